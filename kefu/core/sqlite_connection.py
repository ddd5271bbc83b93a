"""Opening and closing SQLite connections so that a cancellation leaves no thread, task or lock behind.

Every SQLite connection here is an aiosqlite connection: a worker thread owns the file and answers each call
through the event loop. Three paths went wrong around cancellations, at a node's shutdown and at a test's end:

* A task cancelled while its connection opened gave up at once; the thread finished the open afterwards and
  reported it to the event loop. If the loop had closed by then, the thread died ("Event loop is closed") and
  the file stayed open until garbage collection. ``open_connection`` lets the open finish and closes the file
  before the cancellation goes on.
* The thread ends at the first ``stop()`` and never answers a later one, so ``close()`` after ``stop()`` waited
  forever. SQLAlchemy does exactly that when a cancelled statement's connection is terminated: its graceful
  ``close()`` runs in a shielded task, and if the caller is cancelled again meanwhile (a shutdown re-cancels
  tasks that run on), it ``stop()``s the connection. The shielded close then never ended, and neither did the
  event loop's shutdown waiting for it. ``Connection`` makes ``stop`` and ``close`` safe to repeat.
* sqlite3 closed a connection whose cancelled query's cursor lived on as a "zombie" that kept the write lock
  (``SQLiteConnection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

ITER_CHUNK_SIZE = 64  # aiosqlite's default: rows a cursor fetches per hand-off


class SQLiteConnection(sqlite3.Connection):
    """A sqlite3 connection that ends its transaction when it is closed.

    While a cursor still holds an unfinished statement (the traceback of a cancelled query keeps one alive), sqlite3's
    close leaves a "zombie" connection that keeps its transaction, and with it the write lock every transaction here
    takes (``BEGIN IMMEDIATE``), until the garbage collector frees the cursor. Every other writer of the database,
    other processes too, meanwhile fails with "database is locked". A rollback first ends the transaction at once
    (it aborts pending reads).
    """

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # a rollback refused (pending writes): the close does what it can
            if self.in_transaction:
                self.rollback()
        super().close()


class Connection(aiosqlite.Connection):
    """aiosqlite's connection whose ``stop`` and ``close`` may come in any order, any number of times."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._stop_requested = False
        self._stopped: asyncio.Future[Any] | None = None  # answered when the thread has closed the file and ended

    def stop(self) -> asyncio.Future[Any] | None:
        """Have the thread close the file and end; the future is answered then (None outside a running loop)."""
        if not self._stop_requested:
            self._stop_requested = True
            self._stopped = super().stop()
        self._running = False
        return self._answer_when_stopped()

    async def close(self) -> None:
        if not self._stop_requested:
            await super().close()
            return
        answer = self._answer_when_stopped()  # the thread closes the file on its way out (or has): wait for that
        if answer is not None:
            await answer

    def _answer_when_stopped(self) -> asyncio.Future[Any] | None:
        """A future of the caller's own, answered with the first stop: cancelling it leaves that one alone.
        None if there is nothing to wait for: the thread has ended, or the stop was made in another event loop
        (whose future cannot be awaited here, and whose closed loop would refuse the callback)."""
        if self._stopped is None or self._stopped.done():
            return None
        try:
            if self._stopped.get_loop() is not asyncio.get_running_loop():
                return None
        except RuntimeError:  # no running loop: a stop from synchronous code (garbage collection)
            return None
        answer = self._stopped.get_loop().create_future()

        def forward(_: asyncio.Future[Any]) -> None:
            if not answer.done():
                answer.set_result(None)

        self._stopped.add_done_callback(forward)
        return answer


def connector(*args: Any, **kwargs: Any) -> Callable[[], Any]:
    """An ``async_creator`` for SQLAlchemy: ``sqlite3.connect(*args, **kwargs)`` on a ``Connection``."""

    async def connect() -> Connection:
        opener = partial(sqlite3.connect, *args, factory=SQLiteConnection, **kwargs)
        return await open_connection(Connection(opener, ITER_CHUNK_SIZE))

    return connect


async def open_connection(connection: aiosqlite.Connection) -> aiosqlite.Connection:
    """Open ``connection`` (its worker thread opens the file) and return it.

    A caller cancelled meanwhile waits for the open to finish and the thread to close the file and end, then
    is cancelled (see the module docstring). The waits are on plain futures, not tasks, so the loop's own
    shutdown, which cancels every task, cannot cut them short.
    """
    connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does: never blocks exit
    connection._thread.start()
    opened: asyncio.Future[sqlite3.Connection] = asyncio.get_running_loop().create_future()
    connection._tx.put_nowait((opened, connection._connector))
    try:
        connection._connection = await asyncio.shield(opened)
    except asyncio.CancelledError:
        await _uninterrupted(opened)
        if not opened.exception():
            connection._connection = opened.result()
        await _uninterrupted(connection.stop())  # closes the file on the thread, which then ends
        raise
    except Exception:
        await _uninterrupted(connection.stop())  # the open failed: the thread ends before the caller goes on
        raise
    return connection


async def _uninterrupted(future: asyncio.Future[Any] | None) -> None:
    """Wait for ``future`` however often the caller is cancelled meanwhile (it is a file open or close)."""
    while future is not None and not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([future])
