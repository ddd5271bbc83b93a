"""Routing tests that drive the engine step by step use a database of their own: the shared test server's
routing loop would otherwise race them for the same tasks (which is correct, but not what they observe)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu.runtime import Runtime
from tests.conftest import fresh_sqlite_url, runtime_on
from tests.factories import create_tenant
from tests.routing.engine import Engine


@pytest.fixture(scope="session")
def engine_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_sqlite_url(tmp_path_factory.mktemp("routing"))


@pytest.fixture
async def engine_runtime(engine_db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(engine_db_url) as runtime:
        yield runtime


@pytest.fixture
async def engine(engine_runtime: Runtime) -> Engine:
    return Engine(engine_runtime, await create_tenant(engine_runtime))
