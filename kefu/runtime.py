"""The long-lived services of one Kefu node, built once from settings and shared by web and workers."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kefu.core.db import close_engine, create_engine, create_sessionmaker
from kefu.core.ids import new_id
from kefu.core.settings import Settings
from kefu.events.bus import EventBus, create_bus
from kefu.events.group_commit import GroupCommitter
from kefu.events.outbox import OutboxRelay
from kefu.events.uow import UnitOfWork


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    relay: OutboxRelay
    committer: GroupCommitter
    node_id: str
    extras: dict[str, object] = field(default_factory=dict)

    def unit_of_work(self) -> UnitOfWork:
        """Open a unit of work on a new session; the caller commits and closes it."""
        return UnitOfWork(
            self.sessionmaker(), self.relay, crash_after_commit=self.settings.fault_crash_after_commit
        )

    async def start(self) -> None:
        await self.bus.start()
        await self.relay.start()

    async def stop(self) -> None:
        await self.committer.drain()
        await self.relay.stop()
        await self.bus.stop()
        await close_engine(self.engine)


def build_runtime(settings: Settings) -> Runtime:
    node_id = settings.node_id or f"{socket.gethostname()}-{new_id('node')[-8:]}"
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    bus = create_bus(settings.redis_url, node_id)
    relay = OutboxRelay(
        sessionmaker, bus, sweep_seconds=settings.outbox_sweep_seconds, stale_seconds=settings.outbox_stale_seconds
    )
    committer = GroupCommitter(
        sessionmaker,
        relay,
        max_batch=settings.group_commit_max_batch,
        crash_after_commit=settings.fault_crash_after_commit,
    )
    return Runtime(settings, engine, sessionmaker, bus, relay, committer, node_id)
