"""A server on a database of its own, for tests that make logins fail.

Failed logins are counted per client address, and every test client is 127.0.0.1: failures made on the
shared database would eat into the budget of every other test in the suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kefu.runtime import Runtime
from tests.conftest import LiveServer, fresh_sqlite_url, make_settings, runtime_on
from tests.factories import TenantFixture, create_tenant

# Per email; the per-address limit is four times this.
LOGIN_MAX_FAILURES = 5


@pytest.fixture(scope="module")
def own_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_sqlite_url(tmp_path_factory.mktemp("authdb"))


@pytest.fixture(scope="module")
def own_server(own_db_url: str) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(own_db_url, login_max_failures=LOGIN_MAX_FAILURES)).start()
    yield live
    live.stop()


@pytest.fixture
async def own_http(own_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=own_server.url, timeout=15) as client:
        yield client


@pytest.fixture
async def own_runtime(own_db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(own_db_url) as rt:
        yield rt


@pytest.fixture
async def own_tenant(own_runtime: Runtime) -> TenantFixture:
    return await create_tenant(own_runtime)
