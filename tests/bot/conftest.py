"""Bot tests that drive the runner directly use a database of their own: the shared live server's bot worker
sweeps every bot-owned conversation of its database, and must not answer these tests' messages first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import kefu.integrations.commerce as commerce_integrations
from kefu.bot.runner import BotRunner
from kefu.runtime import Runtime
from tests.bot.helpers import enable_bot
from tests.conftest import fresh_sqlite_url, runtime_on
from tests.factories import TenantFixture, create_tenant


@pytest.fixture(scope="session")
def bot_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_sqlite_url(tmp_path_factory.mktemp("botdb"))


@pytest.fixture
async def bot_runtime(bot_db_url: str) -> AsyncIterator[Runtime]:
    commerce_integrations.install()
    async with runtime_on(bot_db_url) as rt:
        yield rt


@pytest.fixture
async def shop(bot_runtime: Runtime) -> TenantFixture:
    """A tenant whose web chat inbox has the bot switched on (its order system: the demo shop)."""
    tenant = await create_tenant(bot_runtime)
    await enable_bot(bot_runtime, tenant.id, tenant.inbox_id)
    return tenant


@pytest.fixture
def runner(bot_runtime: Runtime) -> BotRunner:
    return BotRunner(bot_runtime)
