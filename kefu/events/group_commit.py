"""Group commit: many small writes share one transaction (one fsync) and are acknowledged after it.

Hot paths such as appending chat messages arrive faster than one commit per message allows (about 1-3k
commits/s through the async ORM). Callers submit a use case; a single flusher runs every queued use case
in one transaction, commits once, then resolves each caller.

The common case pays no SAVEPOINTs: the batch runs straight through. Only if some use case raises (or the
commit fails) is the batch rolled back and run again with one SAVEPOINT per use case, so the failing one
gets its own exception and the others still commit. Use cases must therefore be safe to run twice when the
first run was rolled back, which holds for pure database work.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kefu.events.outbox import OutboxRelay
from kefu.events.uow import UnitOfWork

log = logging.getLogger("kefu.events.group_commit")

T = TypeVar("T")
UseCase = Callable[[UnitOfWork], Awaitable[Any]]


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
        self._queue: deque[tuple[UseCase, asyncio.Future[Any]]] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def run(self, use_case: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run ``use_case`` in the next group transaction and return its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((use_case, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="kefu-group-commit")
        return await future

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush_all(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._flush(batch)
            except Exception as exc:  # the commit itself failed: every caller of the batch learns it
                log.exception("group commit failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    async def _flush(self, batch: list[tuple[UseCase, asyncio.Future[Any]]]) -> None:
        batch = [(use_case, future) for use_case, future in batch if not future.cancelled()]
        if not batch:
            return
        done = await self._run_straight(batch)
        if done is None:
            done = await self._run_isolated(batch)
        self.batches += 1
        self.items += len(done)
        for future, result in done:
            if not future.done():
                future.set_result(result)

    async def _run_straight(self, batch: list[tuple[UseCase, asyncio.Future[Any]]]) -> list[tuple[asyncio.Future[Any], Any]] | None:
        """Run the whole batch in one transaction; None if anything failed (then nothing was committed)."""
        async with self._sessionmaker() as session:
            uow = UnitOfWork(session, self._relay, crash_after_commit=self._crash_after_commit)
            done: list[tuple[asyncio.Future[Any], Any]] = []
            try:
                for use_case, future in batch:
                    done.append((future, await use_case(uow)))
                await uow.commit()
            except Exception:
                await uow.rollback()
                return None
            return done

    async def _run_isolated(self, batch: list[tuple[UseCase, asyncio.Future[Any]]]) -> list[tuple[asyncio.Future[Any], Any]]:
        """Run each use case in its own SAVEPOINT so a failure fails only its caller."""
        done: list[tuple[asyncio.Future[Any], Any]] = []
        async with self._sessionmaker() as session:
            uow = UnitOfWork(session, self._relay, crash_after_commit=self._crash_after_commit)
            for use_case, future in batch:
                marker = uow.mark()
                savepoint = await session.begin_nested()
                try:
                    result = await use_case(uow)
                    await savepoint.commit()
                except Exception as exc:
                    if savepoint.is_active:
                        await savepoint.rollback()
                    uow.discard_since(marker)
                    future.set_exception(exc)
                    continue
                done.append((future, result))
            await uow.commit()
        return done
