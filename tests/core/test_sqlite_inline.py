"""SQLite connections: the group committer's inline one waits for another writer without freezing the node, and
none leaves a thread, a hung close or the write lock behind when its caller is cancelled (core/sqlite_connection)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select

from kefu.core.db import close_engine, create_engine
from kefu.core.sqlite_connection import Connection, SQLiteConnection, open_connection
from kefu.core.sqlite_inline import InlineConnection
from kefu.runtime import build_runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.models import Tenant
from kefu.tenants.schemas import TenantCreate
from tests.conftest import make_settings


async def test_a_group_commit_waits_for_another_process_writing_while_the_node_keeps_serving(
        fresh_db_url: str) -> None:
    path = make_url(fresh_db_url).database
    runtime = build_runtime(make_settings(fresh_db_url))
    assert runtime.commit_engine is not None, "a file database gets the committer's own inline engine"
    await runtime.start()
    other_process = sqlite3.connect(path, isolation_level=None)
    try:
        other_process.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        slug = f"t-{uuid.uuid4().hex[:10]}"
        write = asyncio.create_task(runtime.committer.run(
            lambda uow: tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name="Inline shop"))))
        loop = asyncio.get_running_loop()
        gaps, last = [], loop.time()
        for _ in range(20):  # the loop keeps running other work while the committer waits for the lock
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()
        assert not write.done(), "the write waits until the other process commits or rolls back"
        # Waiting inline would freeze every socket of the node for the busy timeout (30 s).
        assert max(gaps) < 5, f"the event loop stalled for {max(gaps):.1f} s"
        other_process.execute("ROLLBACK")
        tenant = await asyncio.wait_for(write, 30)
        async with runtime.sessionmaker() as session:
            stored = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        assert stored is not None and stored.id == tenant.id
    finally:
        other_process.close()
        await runtime.stop()


async def test_a_memory_database_keeps_one_engine(tmp_path: Path) -> None:
    runtime = build_runtime(make_settings("sqlite+aiosqlite:///:memory:"))
    try:
        # A second engine on :memory: would be a second, empty database.
        assert runtime.commit_engine is None
    finally:
        await runtime.stop()


CANCEL_WHILE_WAITING = r"""
import asyncio, sqlite3, sys, threading
from sqlalchemy import text
from kefu.core.db import close_engine, create_engine, create_sessionmaker

path = sys.argv[1]
setup = sqlite3.connect(path, isolation_level=None)
setup.execute("PRAGMA journal_mode=WAL")
setup.execute("CREATE TABLE t (x INTEGER)")
setup.close()


async def main():
    engine = create_engine(f"sqlite+aiosqlite:///{path}", inline=True)
    sessions = create_sessionmaker(engine)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writes

    async def write():
        session = sessions()
        try:
            await session.execute(text("INSERT INTO t VALUES (1)"))
            await session.commit()
        finally:
            await session.close()

    task = asyncio.create_task(write())
    await asyncio.sleep(0.3)  # the statement now waits for the lock on the connection's worker thread
    threading.Timer(1.0, lambda: other.execute("ROLLBACK")).start()
    task.cancel()  # e.g. a shutdown with a deadline
    try:
        await task
    except asyncio.CancelledError:
        pass
    await close_engine(engine)
    probe = sqlite3.connect(path, isolation_level=None, timeout=5)
    probe.execute("BEGIN IMMEDIATE")
    probe.execute("ROLLBACK")
    print("rows", probe.execute("SELECT count(*) FROM t").fetchone()[0])


asyncio.run(main())
"""


def test_cancelling_a_write_that_waits_for_the_lock_neither_crashes_nor_leaves_the_database_locked(
        tmp_path: Path) -> None:
    # In a child process: closing the connection while its worker thread still ran the waiting statement
    # crashed the whole process (SIGSEGV) before the connection kept callers off it meanwhile.
    done = subprocess.run([sys.executable, "-c", CANCEL_WHILE_WAITING, str(tmp_path / "cancel.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "rows 0", "the cancelled insert was not committed, and the lock is free"


KINDS = {"pooled": Connection, "inline": InlineConnection}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_connect_given_up_while_it_opens_leaves_no_worker_thread_to_die(tmp_path: Path, kind: str) -> None:
    # A request cancelled while its connection opens, right before a shutdown (or a test's end) closes the loop:
    # aiosqlite's worker thread finished the open afterwards and died reporting it to the closed loop.
    path = tmp_path / "kefu.db"

    async def give_up_while_connecting() -> None:
        opening, release = threading.Event(), threading.Event()
        use = asyncio.ensure_future(open_connection(KINDS[kind](_held_open(path, opening, release), 64)))
        while not opening.is_set():
            await asyncio.sleep(0.001)
        use.cancel()
        threading.Timer(0.05, release.set).start()
        await asyncio.gather(use, return_exceptions=True)
        assert use.cancelled()

    assert _worker_deaths(give_up_while_connecting) == []
    assert _open_files(path) == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_connect_still_opening_when_its_event_loop_shuts_down_leaves_no_worker_thread_to_die(
        tmp_path: Path, kind: str) -> None:
    # The loop's shutdown cancels every task at once, the one opening the connection included.
    path = tmp_path / "kefu.db"

    async def shut_down_while_connecting() -> None:
        opening, release = threading.Event(), threading.Event()
        asyncio.ensure_future(open_connection(KINDS[kind](_held_open(path, opening, release), 64)))
        while not opening.is_set():
            await asyncio.sleep(0.001)
        threading.Timer(0.05, release.set).start()  # returning now: asyncio.run cancels the open, closes the loop

    assert _worker_deaths(shut_down_while_connecting) == []
    assert _open_files(path) == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_connect_that_fails_leaves_no_worker_thread_to_die(tmp_path: Path, kind: str) -> None:
    async def fail_to_connect() -> None:
        with pytest.raises(sqlite3.OperationalError):
            await open_connection(KINDS[kind](partial(sqlite3.connect, str(tmp_path / "missing" / "kefu.db")), 64))

    # The thread answers the failure, then the stop, unless the loop has closed in between: a race, hence 50 runs.
    assert _worker_deaths(fail_to_connect, runs=50) == []


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("stop_first", [False, True], ids=["close-then-stop", "stop-then-close"])
async def test_a_connection_stopped_while_it_closes_finishes_closing(tmp_path: Path, kind: str,
                                                                     stop_first: bool) -> None:
    # SQLAlchemy terminates the connection of a cancelled statement with a graceful close in a shielded task;
    # if the caller is cancelled again meanwhile (a shutdown re-cancels tasks that run on), it also stops the
    # connection. aiosqlite's thread answers only the first stop, so the close waited forever, and with it the
    # node's shutdown.
    path = tmp_path / "kefu.db"
    connection = await open_connection(KINDS[kind](partial(sqlite3.connect, str(path), check_same_thread=False), 64))
    await connection.execute("CREATE TABLE t (x)")
    busy, release = threading.Event(), threading.Event()
    in_use = getattr(connection, "_in_use", threading.Lock())  # taken, the inline connection queues its calls too

    def statement_of_a_cancelled_caller() -> None:  # say one waiting for the write lock: the close queues behind it
        with in_use:
            busy.set()
            release.wait(10)

    connection._tx.put_nowait((None, statement_of_a_cancelled_caller))
    while not busy.is_set():
        await asyncio.sleep(0.001)
    if stop_first:
        connection.stop()
    closing = asyncio.ensure_future(connection.close())
    await asyncio.sleep(0)
    if not stop_first:
        connection.stop()
    release.set()
    await asyncio.wait_for(closing, 5)
    await asyncio.wait_for(connection.close(), 5)  # and again: nothing left to wait for
    connection._thread.join(5)
    assert not connection._thread.is_alive()
    assert _open_files(path) == []


@pytest.mark.parametrize("inline", [False, True], ids=["pooled", "inline"])
async def test_both_engines_open_their_connections_this_way(tmp_path: Path, inline: bool) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}", inline=inline)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert isinstance(raw.driver_connection, InlineConnection if inline else Connection)
            assert isinstance(raw.driver_connection._connection, SQLiteConnection)
    finally:
        await close_engine(engine)


@pytest.mark.parametrize("factory", [SQLiteConnection, sqlite3.Connection], ids=["ours", "sqlite3"])
def test_closing_a_connection_whose_cursor_lives_on_frees_the_write_lock(tmp_path: Path,
                                                                         factory: type[sqlite3.Connection]) -> None:
    # What a cancelled query leaves behind: its cursor, kept alive by the error's traceback, holds an unfinished
    # statement. sqlite3's close then leaves a "zombie" connection that keeps the transaction and its write lock
    # until the garbage collector frees the cursor; meanwhile every other writer fails with "database is locked".
    path = str(tmp_path / "kefu.db")
    connection = sqlite3.connect(path, factory=factory, isolation_level=None)
    connection.execute("CREATE TABLE t (x)")
    connection.execute("INSERT INTO t VALUES (1), (2)")
    connection.execute("BEGIN IMMEDIATE")
    cursor = connection.execute("SELECT x FROM t")
    assert cursor.fetchone() == (1,)  # the statement is not finished
    connection.close()
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        if factory is SQLiteConnection:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        else:  # the plain connection shows the failure this guards against (and that the test can see it)
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        del cursor


def _held_open(path: Path, opening: threading.Event, release: threading.Event) -> Callable[[], sqlite3.Connection]:
    """A connector whose open waits for ``release``: whatever the test does meanwhile lands while it opens."""

    def open_database() -> sqlite3.Connection:
        opening.set()
        release.wait(10)
        return sqlite3.connect(str(path), check_same_thread=False)

    return open_database


def _worker_deaths(scenario: Callable[[], Coroutine[Any, Any, None]], runs: int = 5) -> list[BaseException | None]:
    """Run ``scenario`` on ``runs`` fresh event loops; return what killed the threads they started."""
    before = set(threading.enumerate())
    deaths: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: None if args.thread in before else deaths.append(args.exc_value)
    try:
        for _ in range(runs):
            asyncio.run(scenario())
        for thread in set(threading.enumerate()) - before:
            thread.join(5)
    finally:
        threading.excepthook = previous
    return deaths


def _open_files(path: Path) -> list[str]:
    """This process's open files of the database at ``path`` (the file, its -wal and -shm)."""
    names = (os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd"))
    return [name for name in names if name.startswith(str(path.resolve()))]
