"""Background services of a node, started by the app's lifespan after the runtime and stopped before it.

Each domain adds one entry to ``WORKERS``: an async function ``run(runtime)`` that works until cancelled (it
must catch and log its own errors per iteration so that one bad item cannot stop it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kefu.runtime import Runtime

Worker = Callable[["Runtime"], Awaitable[None]]

WORKERS: list[tuple[str, Worker]] = []


async def _routing(runtime: Runtime) -> None:
    from kefu.routing.workers import run  # imported late: the routing domain imports half the app

    await run(runtime)


WORKERS.append(("routing", _routing))


async def _bot(runtime: Runtime) -> None:
    from kefu.bot.workers import run  # imported late, like routing: the bot reaches into several domains

    await run(runtime)


WORKERS.append(("bot", _bot))


async def _commerce(runtime: Runtime) -> None:
    import kefu.integrations.commerce  # noqa: F401  (registers the connector kinds)
    from kefu.commerce.workers import run

    await run(runtime)


WORKERS.append(("commerce", _commerce))


async def _attachments(runtime: Runtime) -> None:
    from kefu.attachments.workers import run
    from kefu.integrations.storage.local import store_for

    store_for(runtime)  # the same store the upload routes use
    await run(runtime)


WORKERS.append(("attachments", _attachments))
