"""Database engine, declarative base and column types shared by every domain.

SQLite (embedded mode) and PostgreSQL (scale-out) run the same code; the differences are contained here:
WAL and ``BEGIN IMMEDIATE`` on SQLite so concurrent writers queue on the busy timeout instead of failing
with a stale snapshot, timezone-aware UTC datetimes on both.
"""

from __future__ import annotations

import json
import logging
import weakref
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, event, make_url
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import processors
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from kefu.core import inline_statements
from kefu.core.errors import NotFound
from kefu.core.ids import has_prefix
from kefu.core.sqlite_connection import connector
from kefu.core.sqlite_inline import InlineConnection, inline_connector

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Stores UTC and always returns aware datetimes, also on SQLite which keeps no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite, one step each way instead of this decorator's step plus the dialect's: a chat batch binds and
    # reads several timestamps per message, and the two Python layers were 3-4% of a busy node's CPU. The
    # text is the dialect's own storage format ("2026-12-06 18:00:00.123456"), so stored values are unchanged.

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        last: list[tuple[datetime, str]] = [(datetime.min.replace(tzinfo=UTC), "")]

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            previous = last[0]  # one tuple, swapped whole: safe if two threads bind at once
            if previous[0] is value:  # a message's time is bound to several columns in a row
                return previous[1]
            if value.tzinfo is UTC:  # as utcnow() makes them: the text up to the offset
                text = value.isoformat(" ", "microseconds")[:26]
            elif value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            else:
                text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            last[0] = (value, text)
            return text

        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            return None if value is None else _sqlite_datetime(value).replace(tzinfo=UTC)

        return process


_sqlite_datetime = processors.str_to_datetime  # SQLAlchemy's own parser of SQLite's text timestamps

# An auto-incrementing 64-bit key; SQLite only auto-increments a column declared INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs and select the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://"):]
    return url


# WAL checkpoints copy the log into the database file and fsync both: 5–80 ms that SQLite's default makes the
# commit which crosses 1,000 pages pay. A started runtime checkpoints in a thread of its own instead
# (``kefu.runtime.WalCheckpointer``); this higher threshold is only the safety net for processes without one.
# Checkpoints never drop a committed write, whoever runs them. The size limit truncates a WAL file a burst
# has grown when the log next starts over.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000
SQLITE_WAL_SIZE_LIMIT = 64 * 1024 * 1024

# The raw connections each SQLite engine opened (see ``close_engine``).
_SQLITE_CONNECTIONS: weakref.WeakKeyDictionary[Any, set[Any]] = weakref.WeakKeyDictionary()
# SQLite engines ``close_engine`` closed: they begin no transaction any more (see there).
_CLOSED_SQLITE_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()


class EngineClosed(RuntimeError):
    """A transaction was asked of a SQLite engine after its node closed it (a task that outlived shutdown)."""


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson: several times faster than the stdlib on the message and outbox hot path
    (every outbox row holds its event as JSON). Non-string keys are written as strings, as ``json`` does;
    what orjson refuses and ``json`` takes (integers beyond 64 bits, from a marketplace payload) goes to ``json``.
    NaN and infinities are written as ``null`` (``json`` wrote ``NaN``, which is not JSON and PostgreSQL refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    """orjson, with the stdlib for what only it reads (NaN written by ``json`` before orjson was used)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def create_engine(url: str, *, echo: bool = False, inline: bool = False) -> AsyncEngine:
    """Create the async engine with the per-dialect settings described in the module docstring.

    ``inline`` (SQLite only): statements run on the event loop's thread (``kefu.core.sqlite_inline``), for
    the group committer's short set-based transactions; other work keeps aiosqlite's worker threads.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        parsed = make_url(url)
        database = parsed.database or ""
        inline = inline and database not in ("", ":memory:")
        # hide_parameters: a failing statement is logged without its values (message bodies, PII).
        if inline:
            engine = create_async_engine(url, echo=echo, hide_parameters=True, json_serializer=_json_dumps,
                                         json_deserializer=_json_loads,
                                         async_creator=inline_connector(database, timeout=0))
        else:
            args, options = SQLiteDialect_aiosqlite().create_connect_args(parsed)  # as SQLAlchemy would
            engine = create_async_engine(url, echo=echo, hide_parameters=True, json_serializer=_json_dumps,
                                         json_deserializer=_json_loads,
                                         async_creator=connector(*args, **{**options, "timeout": 30}))

        opened: set[Any] = set()
        _SQLITE_CONNECTIONS[engine.sync_engine] = opened

        @event.listens_for(engine.sync_engine, "close")
        def _sqlite_closed(dbapi_connection: Any, _record: Any) -> None:
            opened.discard(dbapi_connection)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            opened.add(dbapi_connection)
            # Let us issue BEGIN ourselves (see below) instead of the driver's implicit deferred BEGIN.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Inline connections wait for the write lock on their worker thread instead (sqlite_inline.py).
            cursor.execute(f"PRAGMA busy_timeout={0 if inline else 30000}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_SIZE_LIMIT}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.engine in _CLOSED_SQLITE_ENGINES:
                raise EngineClosed("the database engine was closed: no new transactions")
            # IMMEDIATE takes the write lock up front: a deferred transaction that later writes can fail
            # at once with SQLITE_BUSY when another writer committed in between, busy timeout or not.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True,
                               hide_parameters=True, json_serializer=_json_dumps, json_deserializer=_json_loads)


async def close_engine(engine: AsyncEngine) -> None:
    """Dispose of the engine and, on SQLite, close connections the pool no longer knows about.

    A task cancelled in the middle of a statement (workers at shutdown) can leave its connection outside the
    pool with its ``BEGIN IMMEDIATE`` transaction open: the database's write lock would then stay taken for
    every other process until this one exits. Closing the connection rolls that transaction back.

    A closed SQLite engine begins no transaction any more (``EngineClosed``). ``dispose`` alone leaves an engine
    usable, so a task that outlived the node's shutdown (a background refresh, a shielded write) could open a
    fresh connection after this and take the write lock, with nothing left to close that connection.
    """
    if engine.sync_engine in _SQLITE_CONNECTIONS:
        _CLOSED_SQLITE_ENGINES.add(engine.sync_engine)
    await engine.dispose()
    opened = _SQLITE_CONNECTIONS.get(engine.sync_engine, set())
    for connection in list(opened):
        opened.discard(connection)
        raw = getattr(connection, "_connection", None)  # the aiosqlite connection under SQLAlchemy's adapter
        if raw is None:
            continue
        try:
            await raw.close()
        except Exception:  # already closed, or its thread is gone: nothing left to release
            logging.getLogger(__name__).debug("closing a leftover SQLite connection failed", exc_info=True)


async def run_core(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    """Execute a pre-built Core statement (table columns, bind parameters) on the session's connection.

    For the chat hot path, where a group-commit transaction's fixed cost is its dozen statements: the ORM's
    statement handling and building a statement per call cost 170-200 µs a select, a pre-built Core statement
    about 65 µs (`docs/benchmarks.md`). Pending ORM changes are flushed first, as the session's autoflush would.
    On the group committer's SQLite connection the statement skips SQLAlchemy's execution altogether
    (``kefu.core.inline_statements``): the rows are plain tuples there, with ``scalar()``.
    """
    connection, driver = await statement_connection(session)
    if driver is not None:
        return await inline_statements.execute(driver, connection.dialect, statement, params)
    return await connection.execute(statement, params)


_STATEMENT_CONNECTION = "kefu.statement_connection"


async def statement_connection(session: AsyncSession) -> tuple[Any, InlineConnection | None]:
    """The session's connection for statements run on it directly, and the driver connection under it if
    that is the group committer's inline SQLite connection (``kefu.core.sqlite_inline``), where the hot
    path's statements bypass SQLAlchemy; else None. Pending ORM changes are flushed first (as the session's
    autoflush would before a statement of its own).

    Both are remembered for the session's current transaction (the innermost SAVEPOINT if one is open, which
    the session emits when its connection is first asked for): asking the session again costs
    ``session.connection()`` and the pool's raw connection, each a greenlet round trip, nine times in a chat
    batch: a sixth of a one-message transaction's instructions (2,942 k → 2,453 k, ``bench/group_commit.py
    --instructions``). A transaction that is no longer active (a failed flush) asks the session, which raises as
    it should.
    """
    if session.new or session.dirty or session.deleted:
        await session.flush()
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    remembered = session.info.get(_STATEMENT_CONNECTION)
    if remembered is not None and transaction is not None and remembered[0] is transaction and transaction.is_active:
        return remembered[1], remembered[2]
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    driver = raw if isinstance(raw, InlineConnection) else None
    session.info[_STATEMENT_CONNECTION] = (sync.get_nested_transaction() or sync.get_transaction(), connection, driver)
    return connection, driver


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


async def get_scoped(session: AsyncSession, model: type[Any], row_id: str, *, tenant_id: str, code: str,
                     prefix: str | None = None) -> Any:
    """The tenant's row ``row_id`` of ``model``, or ``NotFound(code)``: another tenant's id answers exactly like
    a missing one. ``prefix``: ids of another kind are refused without a query."""
    row = await session.get(model, row_id) if prefix is None or has_prefix(row_id, prefix) else None
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(code)
    return row


def like_escaped(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (use with ``escape="\\"``): a search for "50%" means 50%."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
