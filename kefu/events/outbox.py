"""Publishing committed outbox rows, and recovering rows whose node died before publishing them.

Delivery is at least once: a row is published by the node that committed it right after commit, and any
row still unmarked after ``outbox_stale_seconds`` (or at start-up) is claimed and published by a sweeper.
Consumers tolerate duplicates by event id.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kefu.core.clock import utcnow
from kefu.core.db import run_core
from kefu.core.tasks import cancel_and_wait
from kefu.events.bus import EventBus
from kefu.events.models import OutboxEvent
from kefu.events.types import DomainEvent

log = logging.getLogger("kefu.events.outbox")


_outbox = OutboxEvent.__table__
# One pre-built UPDATE, run as an executemany over the runs of ids (see ``OutboxRelay.mark_published``).
_MARK_RANGE = (update(_outbox)
               .where(_outbox.c.id.between(bindparam("low"), bindparam("high")), _outbox.c.published_at.is_(None))
               .values(published_at=bindparam("now")))


def id_runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted runs of consecutive ids as (first, last) pairs: [1, 2, 3, 7, 9, 10] → [(1, 3), (7, 7), (9, 10)]."""
    runs: list[tuple[int, int]] = []
    for event_id in sorted(set(ids)):
        if runs and event_id == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], event_id)
        else:
            runs.append((event_id, event_id))
    return runs


def to_event(row: OutboxEvent, origin: str | None = None) -> DomainEvent:
    return DomainEvent(
        id=row.id,
        type=row.type,
        tenant_id=row.tenant_id,
        conversation_id=row.conversation_id,
        contact_id=row.contact_id,
        data=row.data,
        created_at=row.created_at,
        origin=origin,
    )


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        sweep_seconds: float = 2.0,
        stale_seconds: float = 5.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.bus = bus
        self._sweep_seconds = sweep_seconds
        self._stale_seconds = stale_seconds
        self._to_mark: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def publish_committed(self, events: list[DomainEvent]) -> None:
        """Hand just-committed events to the bus; marking them published is batched in the background."""
        if not events:
            return
        await self.bus.publish(events)
        self._to_mark.extend(e.id for e in events)

    async def start(self) -> None:
        await self.recover(stale_seconds=0)
        self._task = asyncio.create_task(self._loop(), name="kefu-outbox-relay")

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait([self._task])
        await self.flush_marks()

    def take_marks(self) -> list[int]:
        """Hand over the ids published but not yet marked (give them back with ``restore_marks`` on failure)."""
        ids, self._to_mark = self._to_mark, []
        return ids

    def restore_marks(self, ids: list[int]) -> None:
        self._to_mark.extend(ids)

    @staticmethod
    async def mark_published(session: AsyncSession, ids: list[int]) -> None:
        """Mark ``ids`` published inside the caller's transaction, as runs of consecutive ids.

        Nearly all ids a node publishes are consecutive (one writer at a time), so this is one short
        statement, and still exactly these ids: another node's row committed in between stays unmarked for
        the sweeper. The group committer calls it in each batch for the previous batches' events, so marking
        costs a little per batch instead of a transaction rewriting thousands of rows every sweep (which held
        the write lock long enough to stall chat delivery by 60-180 ms every 2 s).
        """
        now = utcnow()
        await run_core(session, _MARK_RANGE, [{"low": low, "high": high, "now": now} for low, high in id_runs(ids)])

    async def flush_marks(self) -> None:
        """Mark what this node published since the last batch or sweep (when no batch came to do it)."""
        ids = self.take_marks()
        if not ids:
            return
        try:
            async with self._sessionmaker() as session:
                await self.mark_published(session, ids)
                await session.commit()
        except BaseException:
            self.restore_marks(ids)
            raise

    async def recover(self, *, stale_seconds: float | None = None) -> int:
        """Claim and publish unpublished rows older than ``stale_seconds``; return how many."""
        age = self._stale_seconds if stale_seconds is None else stale_seconds
        total = 0
        while True:
            cutoff = utcnow() - timedelta(seconds=age)
            async with self._sessionmaker() as session:
                ids = (
                    await session.scalars(
                        select(OutboxEvent.id)
                        .where(OutboxEvent.published_at.is_(None), OutboxEvent.created_at <= cutoff)
                        .order_by(OutboxEvent.id)
                        .limit(500)
                    )
                ).all()
                if not ids:
                    await session.commit()
                    return total
                rows = (
                    await session.scalars(
                        update(OutboxEvent)
                        .where(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None))
                        .values(published_at=utcnow())
                        .returning(OutboxEvent)
                    )
                ).all()
                events = sorted((to_event(r) for r in rows), key=lambda e: e.id)
                await session.commit()
            if events:
                log.info("recovered unpublished events", extra={"count": len(events)})
                try:
                    await self.bus.publish(events)
                except Exception:
                    # Claimed but not delivered (the bus is down): release the claim for the next sweep.
                    async with self._sessionmaker() as session:
                        await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_([e.id for e in events]))
                                              .values(published_at=None))
                        await session.commit()
                    raise
                total += len(events)

    async def prune(self, *, older_than: timedelta, chunk: int = 5000) -> int:
        """Delete published events older than ``older_than``; return how many (done in chunks)."""
        total = 0
        while True:
            cutoff = utcnow() - older_than
            async with self._sessionmaker() as session:
                # The newest event always stays, so the oldest id left tells resuming clients what is gone.
                newest = select(func.max(OutboxEvent.id)).scalar_subquery()
                ids = select(OutboxEvent.id).where(
                    OutboxEvent.published_at.is_not(None), OutboxEvent.created_at < cutoff,
                    OutboxEvent.id < newest).limit(chunk)
                result = await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
                await session.commit()
            total += result.rowcount or 0
            if not result.rowcount or result.rowcount < chunk:
                return total

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.flush_marks()
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sweep failed")


async def oldest_event_id(session: AsyncSession) -> int | None:
    """The smallest event id still stored; resuming from before it would skip pruned events."""
    return await session.scalar(select(func.min(OutboxEvent.id)))
