"""Who holds SQLite's write lock: abandoned transactions found as they happen, not when the next test trips.

Every transaction here begins with ``BEGIN IMMEDIATE``, so a session left open (its owner gone without a commit,
rollback or close) holds the database's write lock until the garbage collector closes its connection, and some
later test, on any file that connection used, fails with "database is locked". To find the owner, every SQLite
``BEGIN`` of the test process records when and where it ran: the test, the thread, the task, and the chain of
our own frames that led to it (when SQLAlchemy runs the statement in a greenlet, the frames of the greenlet's
parent: the coroutines that awaited it).

After each test, a connection still inside a transaction whose task has finished, or which began over
``STALE_SECONDS`` ago, is reported: in the terminal summary, and in the report of a test that fails on the lock.
The summary also lists where the lock was held longest (over ``LONG_HOLD_SECONDS`` from ``BEGIN IMMEDIATE`` to
commit or rollback): a transaction that waits on slow work makes every other writer wait too.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import greenlet
from sqlalchemy import event
from sqlalchemy.engine import Engine

from kefu.core import db as core_db

ROOT = Path(__file__).resolve().parents[1]
OURS = (str(ROOT / "kefu") + os.sep, str(ROOT / "tests") + os.sep)
STALE_SECONDS = 20.0  # no transaction of the suite legitimately stays open this long
LONG_HOLD_SECONDS = 2.0
MAX_FRAMES = 12


@dataclass
class Begun:
    at: float  # time.monotonic()
    database: str
    test: str
    thread: str
    task: weakref.ref[asyncio.Task[Any]] | None
    task_name: str | None
    frames: list[tuple[str, int, str]]  # ours, innermost first
    holding_since: float | None = None  # when BEGIN IMMEDIATE got the lock

    def describe(self, now: float) -> list[str]:
        task = self.task() if self.task is not None else None
        state = "no task" if self.task is None else ("task gone" if task is None else
                                                     ("task finished" if task.done() else "task running"))
        return [f"  began {now - self.at:.1f} s ago in test {self.test}",
                f"  thread {self.thread}, task {self.task_name} ({state}), from:", *_frame_lines(self.frames)]

    def abandoned(self, now: float) -> bool:
        task = self.task() if self.task is not None else None
        finished = self.task is not None and (task is None or task.done())
        return finished or now - self.at > STALE_SECONDS


# Keyed by the aiosqlite connection (weakly: a collected connection has released its lock).
_BEGUN: weakref.WeakKeyDictionary[Any, Begun] = weakref.WeakKeyDictionary()
_REPORTED: set[int] = set()
FOUND: list[str] = []  # abandoned transactions found so far, for the terminal summary


def _our_frames() -> list[tuple[str, int, str]]:
    current = greenlet.getcurrent()
    frame = current.parent.gr_frame if current.parent is not None else sys._getframe()  # noqa: SLF001
    frames = []
    while frame is not None and len(frames) < MAX_FRAMES:
        file = frame.f_code.co_filename
        if file.startswith(OURS) and not file.endswith("lock_diagnostics.py"):
            frames.append((file, frame.f_lineno, frame.f_code.co_qualname))
        frame = frame.f_back
    return frames


def _remember_begin(connection: Any) -> None:
    if connection.dialect.name != "sqlite":
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    driver = _driver(connection)
    if driver is None:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" (")[0]
    _BEGUN[driver] = Begun(time.monotonic(), str(connection.engine.url.database), test,
                           threading.current_thread().name, weakref.ref(task) if task is not None else None,
                           task.get_name() if task is not None else None, _our_frames())


def _begun(connection: Any) -> Begun | None:
    driver = _driver(connection)
    return None if driver is None else _BEGUN.get(driver)


def _driver(connection: Any) -> Any:
    """The aiosqlite connection under a SQLAlchemy one, or None. Never raises: these listeners run inside the
    product's commits and rollbacks, and ``connection.connection`` raises on a connection invalidated by a
    cancelled statement, which turned a node's rollback at shutdown into an error."""
    try:
        fairy = connection._dbapi_connection  # noqa: SLF001 - None once invalidated; .connection would raise
        return None if fairy is None else fairy.dbapi_connection._connection  # noqa: SLF001
    except (AttributeError, TypeError):  # not an aiosqlite connection
        return None


def _got_lock(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
    if statement == "BEGIN IMMEDIATE":
        begun = _begun(connection)
        if begun is not None:
            begun.holding_since = time.monotonic()


LONG_HOLDS: dict[tuple[str, tuple[tuple[str, int, str], ...]], tuple[float, int, str]] = {}


def _released(connection: Any) -> None:
    if connection.dialect.name != "sqlite":
        return
    begun = _begun(connection)
    if begun is None or begun.holding_since is None:
        return
    held, begun.holding_since = time.monotonic() - begun.holding_since, None
    if held > LONG_HOLD_SECONDS:
        key = (begun.database, tuple(begun.frames[:4]))
        longest, count, test = LONG_HOLDS.get(key, (0.0, 0, begun.test))
        LONG_HOLDS[key] = (max(longest, held), count + 1, test if longest >= held else begun.test)


def install() -> None:
    """Record where every SQLite transaction of the test process begins, and how long it holds the lock."""
    for name, listener in (("begin", _remember_begin), ("after_cursor_execute", _got_lock),
                           ("commit", _released), ("rollback", _released)):
        if not event.contains(Engine, name, listener):
            event.listen(Engine, name, listener)


def long_holds(limit: int = 10) -> list[str]:
    """Where the write lock was held longest, for the terminal summary."""
    lines = []
    ranked = sorted(LONG_HOLDS.items(), key=lambda item: -item[1][0])[:limit]
    for (database, frames), (longest, count, test) in ranked:
        lines.append(f"{longest:.1f} s (over {LONG_HOLD_SECONDS:.0f} s {count} time(s)) on {Path(database).name}, "
                     f"longest in {test}:")
        lines.extend(_frame_lines(frames))
    return lines


def _frame_lines(frames: Iterable[tuple[str, int, str]]) -> list[str]:
    return [f"    {Path(file).relative_to(ROOT)}:{line} in {name}" for file, line, name in frames]


def _in_transaction(driver: Any) -> bool:
    raw = getattr(driver, "_connection", None)  # its sqlite3 connection (None once closed)
    try:
        return raw is not None and raw.in_transaction
    except Exception:  # noqa: BLE001 - closed meanwhile: not holding anything
        return False


def _open_among(drivers: Iterable[Any]) -> list[str]:
    """Those of ``drivers`` (aiosqlite connections) inside a transaction, with where each began."""
    now = time.monotonic()
    lines = []
    for driver in drivers:
        if driver is not None and _in_transaction(driver):
            begun = _BEGUN.get(driver)
            lines.append(f"{begun.database if begun else '?'} via {type(driver).__name__}: IN A TRANSACTION")
            lines.extend(begun.describe(now) if begun is not None else ["  (where it began is unknown)"])
    return lines


def open_transactions() -> list[str]:
    """Every SQLite connection of the process inside a transaction, with where that began."""
    return _open_among(list(_BEGUN.keys())) or ["(none)"]


def check_abandoned(after_test: str) -> None:
    """Note transactions left open by a finished task or for over STALE_SECONDS in FOUND, each once."""
    now = time.monotonic()
    for driver, begun in list(_BEGUN.items()):
        if id(begun) in _REPORTED or not _in_transaction(driver) or not begun.abandoned(now):
            continue
        _REPORTED.add(id(begun))
        FOUND.append("\n".join([f"abandoned SQLite transaction on {begun.database}, seen after {after_test}:",
                                 *begun.describe(now)]))


def _threads() -> list[str]:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():  # noqa: SLF001
        lines.append(f"--- thread {names.get(ident, ident)}")
        stack = [entry for entry in traceback.extract_stack(frame) if not entry.filename.endswith("threading.py")]
        lines.extend(line.rstrip() for line in traceback.format_list(stack[-6:]))
    return lines


def describe() -> str:
    return "\n".join(["SQLite transactions open in this process:", *open_transactions(), "", "Threads:",
                      *_threads()])


def open_on(engine: Any) -> list[str]:
    """The transactions still open on the SQLite connections ``engine`` opened, with where each began."""
    opened = list(core_db._SQLITE_CONNECTIONS.get(engine.sync_engine, ()))  # noqa: SLF001
    return _open_among(getattr(adapted, "_connection", None) for adapted in opened)
