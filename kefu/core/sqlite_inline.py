"""SQLite statements run on the event loop's own thread: the group committer's connection.

aiosqlite hands every statement to a worker thread and the result back through the event loop. On a busy
node each hand-off waits for a whole turn of the loop (hundreds of socket callbacks), so a group-commit batch
of ten statements waited ten turns: with 1,000 chatting customers a 200-message batch took over 100 ms of
wall clock for 25 ms of work, and every message queued behind it. The committer's statements are small and
set-based, and its transaction holds SQLite's write lock, so nothing inside it waits on another connection:
run inline, each blocks the loop for the sub-millisecond it takes instead of costing a turn.

Only the wait for the write lock can be long. Inline statements therefore run with ``busy_timeout = 0``;
a statement that finds the database busy before its transaction started (``BEGIN IMMEDIATE`` while another
connection writes) is handed to the connection's worker thread, which waits there with the usual timeout
while the loop goes on. The worker thread also still serves aiosqlite's own calls (connect, close).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import aiosqlite

BUSY_WAIT_MS = 30_000  # how long a statement handed to the worker thread waits for the write lock


def is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return (code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)) or \
        "database is locked" in str(error)


def _wait_for_lock(in_use: threading.Lock, connection: sqlite3.Connection, fn: Callable[..., Any],
                   args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``fn`` on the worker thread with the busy timeout on (the statement did not run: retrying is safe).

    Holds ``in_use`` throughout, so that nothing runs on the connection from the loop's thread meanwhile, even
    if the task awaiting this was cancelled and closes the connection: that close queues behind us (running it
    concurrently with the statement crashed the process).
    """
    with in_use:
        connection.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
        try:
            return fn(*args, **kwargs)
        finally:
            connection.execute("PRAGMA busy_timeout=0")


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run in the caller's thread (see the module docstring)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._in_use = threading.Lock()  # held by the worker thread while it waits for the write lock

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        connection = self._connection
        if not self._in_use.acquire(blocking=False):
            # The worker thread still runs a statement for a caller that gave up (cancelled): queue behind it.
            return await super()._execute(fn, *args, **kwargs)
        try:
            before = (connection.in_transaction, connection.total_changes)
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                # Retried on the worker only if it provably did nothing: outside a transaction before and after,
                # no row changed. Inside one we hold the write lock and SQLite does not report busy.
                if before != (False, connection.total_changes) or connection.in_transaction or not is_busy(error):
                    raise
        finally:
            self._in_use.release()
        return await super()._execute(_wait_for_lock, self._in_use, connection, fn, args, kwargs)


def inline_connector(database: str, **kwargs: Any) -> Callable[[], Any]:
    """An ``async_creator`` for SQLAlchemy: opens an ``InlineConnection`` to ``database``."""

    async def connect() -> InlineConnection:
        def open_database() -> sqlite3.Connection:
            # Opened on the worker thread, used from the loop's thread as well (never at the same time).
            return sqlite3.connect(database, check_same_thread=False, **kwargs)

        connection = InlineConnection(open_database, 64)
        connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does: never blocks exit
        return await connection

    return connect
