"""Shared test harness: real databases (SQLite always, PostgreSQL when it answers), a real HTTP server.

Tests isolate themselves by creating their own tenant (ids and emails are random), so one migrated database
per session is enough and nothing needs truncating.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from kefu.core.migrate import upgrade
from kefu.core.settings import Settings
from kefu.runtime import Runtime, build_runtime
from tests import lock_diagnostics
from tests.factories import TenantFixture, create_tenant

lock_diagnostics.install()

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_DSN = os.environ.get("KEFU_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_SECRET = "test-secret-key-for-kefu-suite-0123456789"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def unavailable(what: str) -> None:
    """Skip when a service is missing on a developer machine; in CI (where it must exist) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable, and CI must run this suite against it")
    pytest.skip(f"{what} is not reachable")


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "log_json": False,
        "log_level": "WARNING",
        "outbox_sweep_seconds": 0.2,
        "outbox_stale_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def fresh_sqlite_url(directory: Path, name: str = "kefu.db") -> str:
    """A new SQLite database file, migrated: for tests that need a database of their own. (Alembic runs its own
    event loop: from a coroutine, call this through ``asyncio.to_thread``.)"""
    url = f"sqlite+aiosqlite:///{directory / name}"
    upgrade(url)
    return url


async def close_runtime(runtime: Runtime) -> None:
    """Close a test's runtime: every connection it opened, also one left inside a transaction, whose write lock
    would otherwise stay taken until the garbage collector finds it, failing whichever test writes next.

    A transaction still open here is a session nobody closed, by the test or by code it drove: the test fails
    with where that transaction began.
    """
    engines = [engine for engine in (runtime.commit_engine, runtime.engine) if engine is not None]
    left_open = [line for engine in engines for line in lock_diagnostics.open_on(engine)]
    await runtime.close()
    assert not left_open, "a session was left inside a transaction:\n" + "\n".join(left_open)


@asynccontextmanager
async def runtime_on(database_url: str, **overrides: object) -> AsyncIterator[Runtime]:
    """A runtime on ``database_url`` (not started) for factories and direct reads, closed by ``close_runtime``."""
    runtime = build_runtime(make_settings(database_url, **overrides))
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_sqlite_url(tmp_path_factory.mktemp("db"))


@pytest.fixture
def fresh_db_url(tmp_path: Path) -> str:
    """A new migrated SQLite database for this test alone: for tests that restart nodes or fill a database."""
    return fresh_sqlite_url(tmp_path)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not _port_open(PG_HOST, PG_PORT):
        unavailable("PostgreSQL at 127.0.0.1:5432")
    name = f"kefu_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _port_open("127.0.0.1", 6379):
        unavailable("Redis at 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Parametrises storage and event tests over both databases."""
    return request.getfixturevalue(f"{request.param}_url")


def _awaiting(coro: object) -> str:
    """Where a suspended coroutine waits: its chain of awaits, outermost first."""
    parts = []
    while coro is not None and len(parts) < 10:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            parts.append(f"{frame.f_code.co_qualname} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(parts)


STOP_SECONDS = 20  # a node stops in well under a second; one left running disturbs every later test


class LiveServer:
    """A real uvicorn server for one app, in a thread with its own event loop, on a free port."""

    def __init__(self, settings: Settings) -> None:
        from kefu.app import create_app

        self.settings = settings
        self.app = create_app(settings, configure_logs=False)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        # Named after the test that started it, for tests/lock_diagnostics.py's reports.
        started_by = os.environ.get("PYTEST_CURRENT_TEST", "?")
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                        name=f"live server of {started_by}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the server's thread (to run something there, as the server itself would)."""
        return self._server.servers[0].get_loop()

    def start(self) -> LiveServer:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            threading.Event().wait(0.01)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STOP_SECONDS)
        self._sock.close()
        # Still running with its node's tasks left, it would go on working on the database under later tests.
        # (With none left it only waits for its thread pool: a model still loading for the bot, say.)
        if self._thread.is_alive() and self._tasks_left():
            raise RuntimeError(f"{self._thread.name} still runs {STOP_SECONDS} s after it was told to stop:\n"
                               + self._where_it_hangs())

    def _tasks_left(self) -> list[asyncio.Task[object]]:
        for _ in range(3):
            try:
                tasks = list(asyncio.all_tasks(self.loop))
                break
            except RuntimeError:  # the set changed while this thread read it
                continue
        else:
            return []
        return [task for task in tasks if "shutdown_default_executor" not in getattr(task.get_coro(), "__qualname__", "")]

    def _where_it_hangs(self) -> str:
        """The server thread's stack and its loop's unfinished tasks, for the error of a stop that timed out."""
        frame = sys._current_frames().get(self._thread.ident or -1)  # noqa: SLF001
        lines = traceback.format_stack(frame)[-6:] if frame is not None else []
        lines.extend(f"task {task.get_name()}: {_awaiting(task.get_coro())}\n" for task in self._tasks_left())
        return "".join(lines)


@pytest.fixture(scope="session")
def server(sqlite_url: str) -> Iterator[LiveServer]:
    """The shared server on the session's SQLite database.

    Every test client is 127.0.0.1, so the per-address failed-login budget is raised here; the rate-limit
    tests use servers of their own with the default budget.
    """
    live = LiveServer(make_settings(sqlite_url, login_max_failures=200)).start()
    yield live
    live.stop()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
        yield client


@pytest.fixture
async def runtime(sqlite_url: str) -> AsyncIterator[Runtime]:
    """A runtime on the shared SQLite database, in the test's event loop, for factories and direct reads."""
    async with runtime_on(sqlite_url) as rt:
        yield rt


@pytest.fixture
async def tenant(runtime: Runtime) -> TenantFixture:
    """A fresh tenant with an admin, a supervisor, an agent (all logged in) and a web chat inbox."""
    return await create_tenant(runtime)


@pytest.fixture
async def other_tenant(runtime: Runtime) -> TenantFixture:
    return await create_tenant(runtime)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A "database is locked" failure gets a report section on who held the lock (tests/lock_diagnostics.py)."""
    outcome = yield
    if call.excinfo is not None and "database is locked" in str(call.excinfo.value):
        outcome.get_result().sections.append(("who held the SQLite write lock", lock_diagnostics.describe()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After each test's fixtures are gone, look for SQLite transactions nobody will end (tests/lock_diagnostics.py)."""
    yield
    lock_diagnostics.check_abandoned(item.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if lock_diagnostics.LONG_HOLDS:
        terminalreporter.section(f"SQLite write lock held over {lock_diagnostics.LONG_HOLD_SECONDS:.0f} s")
        for line in lock_diagnostics.long_holds():
            terminalreporter.line(line)
    if lock_diagnostics.FOUND:
        terminalreporter.section("abandoned SQLite transactions (they hold the write lock until collected)")
        for text in lock_diagnostics.FOUND:
            terminalreporter.line(text)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        if (root / "e2e") in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
