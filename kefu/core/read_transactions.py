"""End a session's read-only SQLite transaction before slow work, and never one that has written.

Every SQLite transaction here begins with ``BEGIN IMMEDIATE`` (``kefu.core.db``). A session that has run any
statement, a SELECT too, holds the database's only write lock until it commits, rolls back or closes. Code that
reads and then computes for seconds (a search index, clustering) must end its transaction first. Otherwise every
writer of the database waits, and fails with "database is locked" after the busy timeout. Ending it is safe only
if the transaction wrote nothing: committing a caller's half-done writes would break its atomicity.

To tell whether it wrote, SQLite's ``total_changes`` of the connection (rows inserted, updated or deleted,
including by triggers and by Core statements that bypass the ORM) is compared with its value when the session's
transaction began. A session listener records that value. Everything this module cannot prove read-only counts
as written: pending ORM changes, an open savepoint, the group committer's inline connection (whose writes may
still be queued), a session that expires its objects on commit (the caller's loaded objects would go stale), and
a transaction that began before the listener was installed. Schema changes (DDL) do not move ``total_changes``;
kefu runs DDL only in migrations, on connections of their own.

On PostgreSQL a read transaction blocks no writer, so nothing is ended there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from kefu.core.sqlite_inline import InlineConnection

_BEGAN = "kefu.read_transactions.began"


def _total_changes(driver: Any) -> int | None:
    """The connection's row-change count, or None if it cannot be read (closed, not aiosqlite)."""
    try:
        return int(driver.total_changes)  # aiosqlite reads the sqlite3 attribute; no statement runs
    except Exception:  # unknown means "may have written": the caller keeps its transaction
        return None


@event.listens_for(Session, "after_begin")
def _remember_changes(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if connection.dialect.name != "sqlite" or transaction.nested or transaction.parent is not None:
        return
    driver = connection.connection.driver_connection
    session.info[_BEGAN] = (transaction, driver, _total_changes(driver))


def _may_have_written(session: AsyncSession) -> bool:
    """Whether the session's SQLite transaction may have written: True unless proved otherwise."""
    sync = session.sync_session
    root = sync.get_transaction()
    if sync.new or sync.dirty or sync.deleted or sync.get_nested_transaction() is not None:
        return True
    began = sync.info.get(_BEGAN)
    if began is None or began[0] is not root or began[2] is None:
        return True
    _, driver, changes = began
    return isinstance(driver, InlineConnection) or _total_changes(driver) != changes


async def end_read_transaction(session: AsyncSession) -> bool:
    """Commit the session's transaction if it is a SQLite one that wrote nothing; return whether the session
    now holds no SQLite write lock (False: it has written, or may have, and keeps its transaction).

    The caller gives up the isolation of what it read so far: use it where nothing later relies on those reads
    still being current. Loaded objects stay usable: a session that would expire them is never committed."""
    sync = session.sync_session
    if sync.get_transaction() is None:
        return True
    if sync.get_bind().dialect.name != "sqlite":
        return True
    if sync.expire_on_commit or _may_have_written(session):
        return False
    await session.commit()
    return True
