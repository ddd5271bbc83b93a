"""``create_app(settings)``: builds the ASGI app of one Kefu node. Nothing imports this module."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import kefu.models  # noqa: F401  (every table registered before the first query)
from kefu import __version__
from kefu.api.errors import install_error_handlers
from kefu.api.idempotency import IdempotencyMiddleware, prune_expired
from kefu.api.middleware import BodyLimitMiddleware, RequestContextMiddleware, WidgetCORSMiddleware
from kefu.api.v1 import ROUTERS
from kefu.commerce.sources import hub_of as commerce_hub_of
from kefu.core.logging import configure_logging
from kefu.core.metrics import Metrics
from kefu.core.settings import Settings
from kefu.core.tasks import cancel_and_wait
from kefu.events import types as ev
from kefu.events.types import DomainEvent
from kefu.realtime.hub import Hub
from kefu.runtime import Runtime, build_runtime
from kefu.workers import WORKERS

log = logging.getLogger("kefu.app")
STATIC = Path(__file__).with_name("static")


async def _housekeeping(runtime: Runtime) -> None:
    """Prune expired idempotency records, identity nonces and old published events now and then."""
    from kefu.channels import actions as channel_actions

    while True:
        await asyncio.sleep(600)
        try:
            await prune_expired(runtime)
            await channel_actions.prune_identity_nonces(runtime.sessionmaker)
            await runtime.relay.prune(older_than=timedelta(hours=runtime.settings.outbox_retention_hours))
        except Exception:
            log.exception("housekeeping failed")


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, json=settings.log_json)
    runtime = build_runtime(settings)
    metrics = Metrics()
    hub = Hub(runtime, metrics)
    runtime.extras["hub"] = hub
    runtime.committer.observer = metrics.observe_commit

    by_sender: dict[str, Any] = {}  # the counter's child per sender kind (``labels()`` per message is slow)

    def count_stored_messages(event: DomainEvent) -> None:
        # Counted on the node that committed the message (events from other nodes carry their origin).
        if event.type == ev.MESSAGE_CREATED and event.origin in (None, runtime.node_id):
            kind = event.data.get("message", {}).get("sender_kind", "unknown")
            counter = by_sender.get(kind)
            if counter is None:
                counter = by_sender[kind] = metrics.messages.labels(kind)
            counter.inc()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.bus.subscribe(hub.dispatch)
        runtime.bus.subscribe(count_stored_messages)
        await runtime.start()
        task = asyncio.create_task(_housekeeping(runtime), name="kefu-housekeeping")
        workers = [asyncio.create_task(run(runtime), name=f"kefu-{name}") for name, run in WORKERS]
        log.info("kefu node started", extra={"node_id": runtime.node_id, "bus": type(runtime.bus).__name__})
        try:
            yield
        finally:
            await cancel_and_wait([task, *workers])
            await commerce_hub_of(runtime).stop()
            await hub.close()
            await runtime.stop()

    app = FastAPI(
        title="Kefu API",
        version=__version__,
        description="Omnichannel contact center for e-commerce. Errors: `{error: {code, message, details, request_id}}`.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.hub = hub
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Order matters: the outermost middleware is added last.
    app.add_middleware(IdempotencyMiddleware, runtime_getter=lambda: runtime)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_middleware(WidgetCORSMiddleware)
    return app
