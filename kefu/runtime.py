"""The long-lived services of one Kefu node, built once from settings and shared by web and workers."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sqlite3
import threading
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kefu.core.db import close_engine, create_engine, create_sessionmaker
from kefu.core.ids import new_id
from kefu.core.settings import Settings
from kefu.events.bus import EventBus, create_bus
from kefu.events.group_commit import GroupCommitter
from kefu.events.outbox import OutboxRelay
from kefu.events.uow import UnitOfWork

log = logging.getLogger("kefu.runtime")

CHECKPOINT_SECONDS = 0.1


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL from a thread of its own, so that commits do not pay for it.

    Passive checkpoints only: they copy what they can without waiting for readers or writers, and never block
    them. Every process may run one on the same file (SQLite's checkpoint lock lets one work at a time; the
    others skip a round), and the connections' own auto-checkpoint stays as a safety net (``kefu.core.db``).
    """

    def __init__(self, path: str, interval: float = CHECKPOINT_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kefu-wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # e.g. a schema migration holds the database: next round
                    log.debug("WAL checkpoint skipped", exc_info=True)
        finally:
            connection.close()


_heap_frozen = False
YOUNG_COLLECTION_AFTER = 10_000  # net new container objects between two young collections (Python's default: 700)
FULL_COLLECTION_AFTER = 7  # middle-generation collections between two full ones (Python's default: 10)
_serving = False  # set by prepare_serving_process()


def freeze_startup_heap() -> None:
    """Move what start-up created (modules, the app, ~250,000 objects) out of the garbage collector's reach.

    They live as long as the process, yet every full collection walked them: a 60–70 ms pause of the whole
    node. Once per process (a frozen object that later becomes cyclic garbage is never freed, so repeated
    freezes in a process that builds many apps, like the test suite, would leak).
    """
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def prepare_serving_process() -> None:
    """For a serving process (``kefu serve``): freeze the start-up heap when the runtime starts, and collect
    the young generation after 10,000 new objects instead of 700, with a full collection after as many
    allocations as before (10,000 × 10 × 7 against 700 × 10 × 100).

    Under chat load most objects a batch makes (rows, payloads, frames) live for one batch, a few tens of
    milliseconds: with Python's thresholds a young collection ran every few hundred objects and moved them to
    the middle generation, which collected them again. At 1,000 customers the node was stopped 10–11% of the
    time saturated and 5.5% paced, and under 1% and 2.5% with these thresholds (``kefu_gc_pause_seconds_total``
    in ``/metrics``, as ``bench/chat_roundtrip.py`` prints it). Each collection takes longer now: about 15 ms
    on average at 1,000 paced customers (2.2% of a 10 s window over 15 collections).

    What a busy node keeps is mostly per-connection state (1,000 chat sockets: a few hundred thousand
    objects), and a full collection walks all of it: 90–110 ms with the whole node stopped, every 2–3 s under
    chat load with Python's thresholds, which made the p99 delivery latency. Cyclic garbage that reaches the
    old generation is freed later: at 1,000 customers young collections now come 1-5 times in a 10 s window
    saturated and 4-14 times paced (``kefu_gc_collections_total``, as ``bench/chat_roundtrip.py`` prints it),
    so a full one every one to ten minutes. Not for processes that build many apps and leave objects holding
    resources to the collector (the test suite: an abandoned session's SQLite write lock would be held ten times
    longer, or for good once frozen).
    """
    global _serving
    _serving = True
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, middle, FULL_COLLECTION_AFTER)


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
    checkpointer: WalCheckpointer | None = None
    commit_engine: AsyncEngine | None = None  # SQLite: the group committer's inline engine (core/sqlite_inline.py)

    def unit_of_work(self) -> UnitOfWork:
        """Open a unit of work on a new session; the caller commits and closes it."""
        return UnitOfWork(
            self.sessionmaker(), self.relay, crash_after_commit=self.settings.fault_crash_after_commit
        )

    async def start(self) -> None:
        await self.bus.start()
        await self.relay.start()
        if self.checkpointer is not None:
            self.checkpointer.start()
        if _serving:
            freeze_startup_heap()

    async def stop(self) -> None:
        """Stop in order. A step that fails (the last marks finding the database locked, the bus gone) does not
        skip the later ones: the engines are always closed, so no connection, and no SQLite lock one might
        hold, outlives the node."""
        try:
            await self.committer.drain()
            try:
                await self.relay.stop()
            finally:
                await self.bus.stop()
        finally:
            if self.checkpointer is not None:
                await asyncio.to_thread(self.checkpointer.stop)
            await self.close()

    async def close(self) -> None:
        """Close every database connection the runtime opened, also one a cancelled task left inside a
        transaction (``close_engine``). The whole shutdown of a runtime that was never started (commands,
        tests)."""
        try:
            if self.commit_engine is not None:
                await close_engine(self.commit_engine)
        finally:
            await close_engine(self.engine)


def build_runtime(settings: Settings) -> Runtime:
    node_id = settings.node_id or f"{socket.gethostname()}-{new_id('node')[-8:]}"
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    bus = create_bus(settings.redis_url, node_id)
    relay = OutboxRelay(
        sessionmaker, bus, sweep_seconds=settings.outbox_sweep_seconds, stale_seconds=settings.outbox_stale_seconds
    )
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    on_file = bool(database) and database != ":memory:"
    # On SQLite the group committer's statements run on the loop's thread (see kefu/core/sqlite_inline.py).
    commit_engine = create_engine(settings.database_url, inline=True) if on_file else None
    committer = GroupCommitter(
        create_sessionmaker(commit_engine) if commit_engine is not None else sessionmaker,
        relay,
        max_batch=settings.group_commit_max_batch,
        crash_after_commit=settings.fault_crash_after_commit,
    )
    checkpointer = WalCheckpointer(database) if on_file and database else None
    return Runtime(settings, engine, sessionmaker, bus, relay, committer, node_id, checkpointer=checkpointer,
                   commit_engine=commit_engine)
