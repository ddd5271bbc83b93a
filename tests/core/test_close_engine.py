"""A stopped node never leaves the SQLite database locked for the others."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from kefu.core.db import close_engine, create_engine


async def test_a_connection_left_in_a_transaction_is_rolled_back_when_the_engine_closes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}"
    node = create_engine(url)
    async with node.connect() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.commit()
    # What a task cancelled mid-statement leaves behind: a connection outside the pool, BEGIN IMMEDIATE open.
    leaked = await node.connect()
    await leaked.execute(text("INSERT INTO t VALUES (1)"))
    await close_engine(node)

    other = create_engine(url)  # before the fix: waited out the busy timeout, then "database is locked"
    try:
        async with other.connect() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            await conn.commit()
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await close_engine(other)
        # The leaked connection's SQLAlchemy wrapper is still checked out: let it go now, not to the garbage
        # collector (which warns, in whatever test happens to run a collection).
        await leaked.invalidate()
