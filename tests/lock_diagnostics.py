"""What held SQLite's write lock, for the report of a test that failed with "database is locked".

That failure is rare here, and it shows in whichever test next needed the lock, not in the one that left it
held. So the report lists every SQLite connection this process has open, whether it is inside a transaction
(ours all begin with ``BEGIN IMMEDIATE``, so that is who holds the lock if it is one of us), and every
thread's stack at the moment of the failure: the live servers' threads included.
"""

from __future__ import annotations

import sys
import threading
import traceback

from kefu.core import db as core_db


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
    return lines or ["(none open)"]


def _threads() -> list[str]:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"--- thread {names.get(ident, ident)}")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame)[-12:])
    return lines


def describe() -> str:
    return "\n".join(["SQLite connections of this process:", *_connections(), "", "Threads:", *_threads()])
