"""A node's closed database engine begins no transaction: a task that outlives the shutdown cannot take SQLite's
write lock on a connection nobody is left to close."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from kefu.core.db import EngineClosed
from kefu.runtime import build_runtime
from tests.conftest import make_settings, runtime_on
from tests.factories import create_tenant


async def test_a_closed_runtime_refuses_new_transactions_and_others_write_on(fresh_db_url: str) -> None:
    node = build_runtime(make_settings(fresh_db_url))
    await create_tenant(node)
    await node.close()

    late = node.sessionmaker()  # say, a background refresh that was still running at shutdown
    with pytest.raises(EngineClosed):
        await late.execute(text("SELECT 1"))
    await late.close()
    with pytest.raises(EngineClosed):
        await node.committer.run(lambda uow: uow.session.execute(text("SELECT 1")))

    async with runtime_on(fresh_db_url) as other:  # the database is free for everyone else
        assert (await create_tenant(other)).id
