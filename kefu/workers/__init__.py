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
