"""Group commit: many small writes share one transaction (one fsync) and are acknowledged after it.

Hot paths such as appending chat messages arrive faster than one commit per message allows (about 1-3k
commits/s through the async ORM), and on SQLite every statement is also an event-loop round trip through the
driver's thread. Two ways in:

* ``run(use_case)``: any use case ``(uow) -> result``; queued ones run one after another in one transaction.
* ``run_batched(batch_fn, item)``: items queued for the same set-based ``batch_fn(uow, items)`` are handed
  to it together, so a batch of a hundred chat messages costs a handful of statements, not hundreds. The
  batch function returns one result per item, or a ``DomainError`` *instance* for an item it refuses
  (the other items still commit).

A single flusher commits once per batch, then resolves each caller. If anything raises (or the commit
fails) the batch is rolled back and run again item by item, each in its own SAVEPOINT, so the failing one
gets its own exception and the others still commit. Use cases and batch functions must therefore be safe to
run twice when the first run was rolled back, which holds for pure database work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kefu.core.errors import DomainError
from kefu.events.outbox import OutboxRelay
from kefu.events.uow import UnitOfWork

log = logging.getLogger("kefu.events.group_commit")

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741
UseCase = Callable[[UnitOfWork], Awaitable[Any]]
BatchFn = Callable[[UnitOfWork, Sequence[Any]], Awaitable[Sequence[Any]]]


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[Any]
    use_case: UseCase | None = None
    batch_fn: BatchFn | None = None
    item: Any = None


class GroupCommitter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        relay: OutboxRelay,
        *,
        max_batch: int = 256,
        crash_after_commit: bool = False,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._relay = relay
        self._max_batch = max_batch
        self._crash_after_commit = crash_after_commit
        self._queue: deque[_Job] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0
        self.observer: Callable[[int, float], None] | None = None  # (batch size, seconds), e.g. for metrics

    async def run(self, use_case: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run ``use_case`` in the next group transaction and return its result once committed."""
        return await self._enqueue(_Job(self._future(), use_case=use_case))

    async def run_batched(self, batch_fn: Callable[[UnitOfWork, Sequence[I]], Awaitable[Sequence[Any]]],
                          item: I) -> Any:
        """Hand ``item`` to ``batch_fn`` together with the other items queued for it; return its result."""
        return await self._enqueue(_Job(self._future(), batch_fn=batch_fn, item=item))

    def submit_batched(self, batch_fn: Callable[[UnitOfWork, Sequence[I]], Awaitable[Sequence[Any]]],
                       item: I) -> asyncio.Future[Any]:
        """As ``run_batched``, but return the future its result (or exception) lands in: for callers that react
        in a done-callback instead of holding a task per item (the WebSocket gateway, per message)."""
        job = _Job(self._future(), batch_fn=batch_fn, item=item)
        self._submit(job)
        return job.future

    async def run_batched_many(self, batch_fn: Callable[[UnitOfWork, Sequence[I]], Awaitable[Sequence[Any]]],
                               items: Sequence[I]) -> list[Any]:
        """Submit several items at once; return each one's result, or its exception, in order."""
        return await asyncio.gather(*(self.run_batched(batch_fn, item) for item in items), return_exceptions=True)

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _enqueue(self, job: _Job) -> Any:
        self._submit(job)
        return await job.future

    def _submit(self, job: _Job) -> None:
        self._queue.append(job)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="kefu-group-commit")

    async def _flush_all(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._flush(batch)
            except Exception as exc:  # the commit itself failed: every caller of the batch learns it
                log.exception("group commit failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)

    async def _flush(self, batch: list[_Job]) -> None:
        batch = [job for job in batch if not job.future.cancelled()]
        if not batch:
            return
        started = time.perf_counter()
        outcomes = await self._run_straight(batch)
        if outcomes is None:
            outcomes = await self._run_isolated(batch)
        self.batches += 1
        self.items += len(batch)
        if self.observer is not None:
            self.observer(len(batch), time.perf_counter() - started)
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    @contextlib.asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work on a new session, closed directly on exit.

        Not the session's own ``async with``: its exit closes the session in a task of its own (to survive
        cancellation), which cost the flusher two turns of a busy event loop per batch (18 ms on average with
        1,000 chatting customers). The flusher is cancelled only at shutdown, where close_engine releases
        leftovers.
        """
        session = self._sessionmaker()
        try:
            yield UnitOfWork(session, self._relay, crash_after_commit=self._crash_after_commit)
        finally:
            await session.close()

    async def _run_straight(self, batch: list[_Job]) -> list[Any] | None:
        """Run the whole batch in one transaction; None if anything raised (then nothing was committed)."""
        outcomes: dict[int, Any] = {}
        groups: dict[BatchFn, list[int]] = {}
        for index, job in enumerate(batch):
            if job.batch_fn is not None:
                groups.setdefault(job.batch_fn, []).append(index)
        marks: list[int] = []
        async with self._unit_of_work() as uow:
            try:
                # First, while the transaction has written nothing: earlier batches' events, published since,
                # are marked in a transaction we hold anyway, and the outbox ids are reserved. Both only read
                # or write the outbox, so on SQLite the batch's own writes can wait for the commit
                # (``core.bulk``) instead of being run early for these statements.
                marks = self._relay.take_marks()
                if marks:
                    await self._relay.mark_published(uow.session, marks)
                await uow.reserve_event_ids()
                for batch_fn, indexes in groups.items():
                    results = await batch_fn(uow, [batch[i].item for i in indexes])
                    if len(results) != len(indexes):
                        raise RuntimeError(f"{batch_fn!r} returned {len(results)} results for {len(indexes)} items")
                    outcomes.update(zip(indexes, results, strict=True))
                for index, job in enumerate(batch):
                    if job.use_case is not None:
                        outcomes[index] = await job.use_case(uow)
                await uow.commit()
            except BaseException as exc:
                self._relay.restore_marks(marks)  # also when cancelled: the next batch or sweep marks them
                if not isinstance(exc, Exception):
                    raise
                await uow.rollback()
                return None
        return [outcomes[i] for i in range(len(batch))]

    async def _run_isolated(self, batch: list[_Job]) -> list[Any]:
        """Run each job in its own SAVEPOINT so a failure fails only its caller."""
        outcomes: list[Any] = []
        async with self._unit_of_work() as uow:
            session = uow.session
            for job in batch:
                marker = uow.mark()
                savepoint = await session.begin_nested()
                try:
                    if job.batch_fn is not None:
                        [outcome] = await job.batch_fn(uow, [job.item])
                    else:
                        outcome = await job.use_case(uow)  # type: ignore[misc]
                    if isinstance(outcome, DomainError):
                        raise outcome
                    await savepoint.commit()
                except Exception as exc:
                    if savepoint.is_active:
                        await savepoint.rollback()
                    uow.discard_since(marker)
                    outcome = exc
                outcomes.append(outcome)
            await uow.commit()
        return outcomes
