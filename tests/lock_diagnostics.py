"""What held SQLite's write lock, for the report of a test that failed with "database is locked".

That failure is rare here, and it shows in whichever test next needed the lock, not in the one that left it
held. So the report lists every SQLite connection this process has open, whether it is inside a transaction
(ours all begin with ``BEGIN IMMEDIATE``, so that is who holds the lock if it is one of us), and every
thread's stack at the moment of the failure: the live servers' threads included.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from kefu.core import db as core_db

# Where each SQLite connection's current transaction began: thread, task and the task's coroutine. (The task's
# stack adds nothing: while it runs, frames above its coroutine are the event loop's and pytest's.)
_BEGUN: weakref.WeakKeyDictionary[Any, tuple[str, str | None, str | None]] = weakref.WeakKeyDictionary()


def _remember_begin(connection: Any) -> None:
    if connection.dialect.name != "sqlite":
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    coro = task.get_coro() if task is not None else None
    code, frame = getattr(coro, "cr_code", None), getattr(coro, "cr_frame", None)
    where = f"{code.co_qualname} ({code.co_filename}:{frame.f_lineno if frame else '?'})" if code else None
    try:
        _BEGUN[connection.connection.dbapi_connection._connection] = (  # keyed by the aiosqlite connection
            threading.current_thread().name, task.get_name() if task is not None else None, where)
    except (AttributeError, TypeError):  # not an aiosqlite connection: nothing to remember
        pass


def install() -> None:
    """Record where every SQLite transaction of the test process begins (a few µs per transaction)."""
    if not event.contains(Engine, "begin", _remember_begin):
        event.listen(Engine, "begin", _remember_begin)


def _connections() -> list[str]:
    lines = []
    for sync_engine, opened in list(core_db._SQLITE_CONNECTIONS.items()):
        for adapted in list(opened):
            driver = getattr(adapted, "_connection", None)  # the aiosqlite connection
            raw = getattr(driver, "_connection", None)  # its sqlite3 connection (None once closed)
            try:
                state = "closed" if raw is None else ("IN A TRANSACTION" if raw.in_transaction else "idle")
            except Exception as error:  # noqa: BLE001 - a report must not fail the report
                state = f"unknown ({type(error).__name__})"
            lines.append(f"{sync_engine.url.database} via {type(driver).__name__}: {state}")
            if state == "IN A TRANSACTION":
                thread, task, coroutine = _BEGUN.get(driver, ("?", None, None))
                lines.append(f"  it began in thread {thread}, task {task}, coroutine {coroutine}")
    return lines or ["(none open)"]


def _threads() -> list[str]:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"--- thread {names.get(ident, ident)}")
        stack = [entry for entry in traceback.extract_stack(frame) if not entry.filename.endswith("threading.py")]
        lines.extend(line.rstrip() for line in traceback.format_list(stack[-8:]))
    return lines


def describe() -> str:
    return "\n".join(["SQLite connections of this process:", *_connections(), "", "Threads:", *_threads()])
