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

Writes, by contrast, can leave the loop's thread: a batch's row inserts and updates (multi-row statements,
``kefu.core.bulk``) are queued with ``write_behind`` and, for a large batch, run on the worker thread together
with the COMMIT, in one hand-off per transaction. SQLite releases the GIL while it steps a statement, so
inserting a few hundred messages, their outbox rows and index entries, and writing the WAL, uses the
machine's other core while the loop goes on serving sockets. A queued write runs before any other call on
the connection, so everything the transaction reads afterwards sees it, and a failing write fails that call,
inside the transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from kefu.core.sqlite_connection import Connection, SQLiteConnection, open_connection

BUSY_WAIT_MS = 30_000  # how long a statement handed to the worker thread waits for the write lock
# Queued writes of fewer bound values (about 100 chat messages with their outbox rows) commit inline: the hand-off
# to the worker costs the batch a turn of the event loop and the worker's GIL waits, which a small batch's
# callers would feel as latency while the loop has time to spare.
WORKER_COMMIT_MIN_VALUES = 2_500


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


Writes = list[tuple[str, tuple[Any, ...]]]


def _run_writes(connection: sqlite3.Connection, writes: Writes) -> None:
    for sql, parameters in writes:
        connection.execute(sql, parameters)


def _after_writes(connection: sqlite3.Connection, writes: Writes, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
    _run_writes(connection, writes)
    return fn(*args, **kwargs)


def _commit_with_writes(in_use: threading.Lock, connection: sqlite3.Connection, writes: Writes) -> None:
    """The queued writes and the COMMIT, on the worker thread; nothing else uses the connection meanwhile.
    If a write fails the transaction stays open for the caller's rollback, as with any failed statement."""
    with in_use:
        _run_writes(connection, writes)
        connection.commit()


class InlineConnection(Connection):
    """An aiosqlite connection whose calls run in the caller's thread (see the module docstring)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._in_use = threading.Lock()  # held by the worker thread while it uses the connection
        self._writes: Writes = []

    def write_behind(self, sql: str, parameters: tuple[Any, ...]) -> None:
        """Queue ``execute(sql, parameters)`` for the open transaction: it runs before the connection's next
        call, and on the worker thread if that call is the commit (see the module docstring)."""
        if not self._running or not self._connection or not self._connection.in_transaction:
            raise ValueError("write_behind needs an open transaction")
        self._writes.append((sql, parameters))

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(sqlite3 connection, *args)`` as one call on this connection: inline, after any queued writes."""
        return await self._execute(fn, self._connection, *args)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        connection = self._connection
        if self._writes:
            writes, self._writes = self._writes, []
            own = getattr(fn, "__name__", "") if getattr(fn, "__self__", None) is connection else ""
            if own == "commit" and sum(len(parameters) for _, parameters in writes) >= WORKER_COMMIT_MIN_VALUES:
                return await super()._execute(_commit_with_writes, self._in_use, connection, writes)
            if own not in ("rollback", "close"):  # those drop the queued writes with the transaction
                fn, args, kwargs = _after_writes, (connection, writes, fn, args, kwargs), {}
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
            # A large statement cache: the multi-row writes add a prepared text per chunk size (kefu.core.bulk).
            return sqlite3.connect(database, check_same_thread=False, cached_statements=512, factory=SQLiteConnection,
                                   **kwargs)

        return await open_connection(InlineConnection(open_database, 64))

    return connect
