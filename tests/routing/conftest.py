"""Routing tests that drive the engine step by step use a database of their own: the shared test server's
routing loop would otherwise race them for the same tasks (which is correct, but not what they observe)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kefu.core.migrate import upgrade
from kefu.runtime import Runtime, build_runtime
from tests.conftest import make_settings
from tests.factories import create_tenant
from tests.routing.engine import Engine


@pytest.fixture(scope="session")
def engine_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('routing')) / 'routing.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def engine_runtime(engine_db_url: str) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(engine_db_url))
    yield runtime
    await runtime.engine.dispose()


@pytest.fixture
async def engine(engine_runtime: Runtime) -> Engine:
    return Engine(engine_runtime, await create_tenant(engine_runtime))
