"""A kefu node whose chat batches are stored by a second process: a measured sketch of a writer process.

``bench/chat_roundtrip.py --phases writer-process`` starts this instead of ``kefu serve``. It is ``kefu serve``
with one change: when the group committer's batch holds only widget messages and agent replies, the node hands
the items to a writer process (``multiprocessing``, spawned when the first such batch comes, in the warm-up)
and waits for its answer while the event loop goes on serving sockets. The writer runs kefu's own committer on
its own connection to the same SQLite file (the same batch functions, statements and transaction) and sends
back each item's outcome and the events the batch committed; the node publishes those on its bus and
acknowledges the senders as usual. So the batch's Python and SQLite work move to the other core; what the node
adds is pickling the items, outcomes and events across the pipe. Compared with the plain node in one run, it
measures what moving storage off the event loop's thread would give on this machine, before any design work.

A measurement sketch, not a design: up to two batches in flight (a message that arrives while one is out
starts the next), answered in order; the writer marks events published when it has handed them over (the node
publishes right after); an item's failure other than a refusal comes back as its text; a writer that dies takes the
node's chat with it. It replaces private methods of ``GroupCommitter`` (``_submit``, ``_flush_all``,
``_run_straight``), so it follows that class's changes. Nothing of kefu imports it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.channels.actions import do_post_visitor_messages  # noqa: E402
from kefu.conversations.actions import do_post_agent_messages  # noqa: E402
from kefu.core.errors import DomainError  # noqa: E402
from kefu.events.group_commit import GroupCommitter  # noqa: E402

log = logging.getLogger("kefu.bench.writer")
_KINDS = {do_post_visitor_messages: "visitor", do_post_agent_messages: "agent"}
_FUNCTIONS = {kind: fn for fn, kind in _KINDS.items()}


def _portable(outcome: Any) -> Any:
    """Outcomes cross the pipe as they are; a failure other than a refusal (``DomainError``, which pickles with
    its code) as a ``RuntimeError`` with its text, since not every exception can be rebuilt on the other side."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, DomainError):
        return RuntimeError(repr(outcome))
    return outcome


def _writer(connection: Any) -> None:
    """The writer process: kefu's runtime without its background loops, answering one batch at a time."""
    import kefu.models  # noqa: F401  (every table, for the foreign keys the ORM resolves)
    from kefu.core.settings import Settings
    from kefu.runtime import build_runtime, prepare_serving_process

    GroupCommitter._run_straight = _run_straight  # type: ignore[method-assign]  (spawn re-ran this module)
    GroupCommitter._flush_all = _original_flush_all  # type: ignore[method-assign]
    GroupCommitter._submit = _original_submit  # type: ignore[method-assign]
    prepare_serving_process()

    async def serve() -> None:
        runtime = build_runtime(Settings())
        published: list[Any] = []
        runtime.bus.subscribe(published.append)
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    batch = await loop.run_in_executor(None, connection.recv)
                except EOFError:  # the node stopped
                    return
                futures = [runtime.committer.submit_batched(_FUNCTIONS[kind], item) for kind, item in batch]
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
                events, published[:] = list(published), []
                connection.send(([_portable(outcome) for outcome in outcomes], events))
        finally:
            await runtime.stop()

    asyncio.run(serve())


class _Writer:
    """The node's end of the pipe. Up to ``IN_FLIGHT`` batches are sent before the first one's answer is back
    (the writer takes them in order), so the writer need not wait while the node publishes a batch's events and
    sends the next one. A thread reads the answers and hands them to the event loop in order."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_writer, args=(child,), name="kefu-bench-writer", daemon=True)
        self.process.start()
        self.loop = asyncio.get_running_loop()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        threading.Thread(target=self._read, name="kefu-bench-writer-answers", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                answer = self.connection.recv()
            except (EOFError, OSError):
                return
            self.loop.call_soon_threadsafe(self._answer, answer)

    def _answer(self, answer: Any) -> None:
        future = self.waiting.popleft()
        if not future.done():
            future.set_result(answer)

    async def call(self, batch: list[tuple[str, Any]]) -> tuple[list[Any], list[Any]]:
        future = self.loop.create_future()
        self.connection.send(batch)  # first: a batch that cannot be sent must not take a later batch's answer
        self.waiting.append(future)
        return await future


IN_FLIGHT = 2


def _submit(self: GroupCommitter, job: Any) -> None:
    _original_submit(self, job)
    wakeup = getattr(self, "bench_wakeup", None)  # set while its flusher runs: a new job wakes it
    if wakeup is not None:
        wakeup.set()


async def _flush_all(self: GroupCommitter) -> None:
    """As ``GroupCommitter._flush_all``, with up to ``IN_FLIGHT`` batches being committed at once: a job that
    arrives while one batch is out starts the next batch at once."""
    wakeup = self.bench_wakeup = asyncio.Event()  # type: ignore[attr-defined]
    running: dict[asyncio.Future[None], list[Any]] = {}
    try:
        while self._queue or running:
            while self._queue and len(running) < IN_FLIGHT:
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                running[asyncio.ensure_future(self._flush(batch))] = batch
            wakeup.clear()
            woken = asyncio.ensure_future(wakeup.wait())
            done, _ = await asyncio.wait([*running, woken], return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            for task in done:
                if task is woken:
                    continue
                batch = running.pop(task)  # type: ignore[arg-type]
                error = task.exception() if not task.cancelled() else asyncio.CancelledError()
                if error is not None:  # as the original: every caller of the batch learns it
                    log.error("writer batch failed", exc_info=error)
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(error)
    finally:
        self.bench_wakeup = None  # type: ignore[attr-defined]


_writer_process: _Writer | None = None
_run_straight = GroupCommitter._run_straight
_original_flush_all = GroupCommitter._flush_all
_original_submit = GroupCommitter._submit


async def _in_writer(self: GroupCommitter, batch: list[Any]) -> list[Any] | None:
    global _writer_process
    if any(job.batch_fn not in _KINDS for job in batch):
        return await _run_straight(self, batch)
    if _writer_process is None:
        _writer_process = _Writer()
    outcomes, events = await _writer_process.call([(_KINDS[job.batch_fn], job.item) for job in batch])
    await self._relay.bus.publish(events)
    return outcomes

GroupCommitter._run_straight = _in_writer  # type: ignore[method-assign]
GroupCommitter._flush_all = _flush_all  # type: ignore[method-assign]
GroupCommitter._submit = _submit  # type: ignore[method-assign]

if __name__ == "__main__":
    from kefu.cli import app

    app()
