"""Set-based writes for the chat hot path: many rows in a few statements, with SQLAlchemy's per-row work cut out.

Core's executemany builds a parameter dictionary per row and runs every column's bind processor through its
generic machinery; with a group-commit batch of a few hundred messages, outbox rows and conversation updates
that was several percent of a busy node's CPU (``docs/benchmarks.md``). On SQLite these helpers hand the
driver plain values instead: the statement text is built once per table, column set and row count, and only
the columns whose type needs it go through the type's own bind processor (timestamps, JSON, booleans), so the
stored values are exactly what Core would store. PostgreSQL keeps Core's path (asyncpg takes typed values and
prepares statements itself).

On SQLite the rows go in multi-row statements (``INSERT … VALUES (…), (…)``, ``UPDATE … FROM (VALUES …)``,
which, like the RETURNING clauses elsewhere, need SQLite 3.35 or newer), one per power-of-two chunk, instead
of one step per row. On the group committer's connection (``kefu.core.sqlite_inline``) they are queued until
the next statement or the commit, which runs a large batch's writes on the connection's worker thread, off
the event loop; not while a SAVEPOINT is open (a batch rerun item by item must see each item's failure at its
own statement). SQLite releases the GIL for each statement step and takes it back after: one step per chunk,
not per row, keeps the worker from queueing for the busy loop's GIL hundreds of times per commit.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.core.db import statement_connection

if TYPE_CHECKING:
    from kefu.core.sqlite_inline import InlineConnection

MAX_CHUNK = 256  # rows per statement (the group committer's largest batch); a power of two
_MAX_VARIABLES = 32_766  # SQLite's default limit of bound values per statement


@dataclass(slots=True)
class _Plan:
    statement: Callable[[int], str]  # the statement text for a chunk of n rows
    keys: tuple[str, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor) where one is needed
    texts: dict[int, str] = field(default_factory=dict)

    def values(self, row: dict[str, Any]) -> list[Any]:
        values = [row[key] for key in self.keys]
        for position, convert in self.converters:
            values[position] = convert(values[position])
        return values

    def chunks(self, rows: Sequence[dict[str, Any]]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """(statement, flat parameters) per chunk of rows: power-of-two sizes, so few distinct texts exist
        and SQLite's statement cache keeps them prepared."""
        limit = min(MAX_CHUNK, 1 << ((_MAX_VARIABLES // len(self.keys)).bit_length() - 1))
        start = 0
        while start < len(rows):
            size = min(limit, 1 << ((len(rows) - start).bit_length() - 1))
            text = self.texts.get(size)
            if text is None:
                text = self.texts[size] = self.statement(size)
            flat: list[Any] = []
            for row in rows[start:start + size]:
                flat.extend(self.values(row))
            yield text, tuple(flat)
            start += size


# Plans per dialect instance (bind processors depend on its settings, e.g. the JSON serialiser).
_PLANS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _Plan]] = weakref.WeakKeyDictionary()


def _plan(dialect: Any, key: tuple[Any, ...], table: Table, statement: Callable[[int], str],
          keys: tuple[str, ...]) -> _Plan:
    plans = _PLANS.setdefault(dialect, {})
    plan = plans.get(key)
    if plan is None:
        converters = []
        for position, column in enumerate(keys):
            processor = table.c[column].type._cached_bind_processor(dialect)
            if processor is not None:
                converters.append((position, processor))
        plan = plans[key] = _Plan(statement, keys, tuple(converters))
    return plan


def _placeholders(width: int, rows: int) -> str:
    row = f"({', '.join('?' * width)})"
    return ", ".join([row] * rows)


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dictionaries with the same keys, every column given that has no default) into ``table``."""
    if not rows:
        return
    connection, driver = await statement_connection(session)
    keys = tuple(rows[0])
    if connection.dialect.name != "sqlite":
        await connection.execute(insert(table), list(rows))
        return

    def statement(size: int) -> str:  # table and column names, never data
        return f"INSERT INTO {table.name} ({', '.join(keys)}) VALUES {_placeholders(len(keys), size)}"  # noqa: S608

    plan = _plan(connection.dialect, ("insert", table.name, keys), table, statement, keys)
    await _execute_chunks(session, connection, driver, plan, rows)


async def update_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], *,
                      key: str = "id") -> None:
    """UPDATE ``table`` by its ``key`` column: each row gives ``key`` and the new values of the same columns.
    If several rows name the same key, the last one wins (as one UPDATE after the other would)."""
    if not rows:
        return
    connection, driver = await statement_connection(session)
    columns = tuple(name for name in rows[0] if name != key)
    if connection.dialect.name != "sqlite":
        statement = update(table).where(table.c[key] == bindparam("_key")).values(
            {name: bindparam(name) for name in columns})
        await connection.execute(statement, [{**row, "_key": row[key]} for row in rows])
        return
    rows = list({row[key]: row for row in rows}.values())
    keys = (key, *columns)

    def statement(size: int) -> str:  # table and column names, never data
        return (f"WITH v ({', '.join(keys)}) AS (VALUES {_placeholders(len(keys), size)}) "  # noqa: S608
                f"UPDATE {table.name} SET {', '.join(f'{name} = v.{name}' for name in columns)} "
                f"FROM v WHERE {table.name}.{key} = v.{key}")

    plan = _plan(connection.dialect, ("update", table.name, key, columns), table, statement, keys)
    await _execute_chunks(session, connection, driver, plan, rows)


async def _execute_chunks(session: AsyncSession, connection: Any, driver: InlineConnection | None, plan: _Plan,
                         rows: Sequence[dict[str, Any]]) -> None:
    """SQLite: queue the chunks on the committer's connection when no SAVEPOINT is open, else execute them now."""
    queue = driver.write_behind if driver is not None and not session.in_nested_transaction() else None
    for text, parameters in plan.chunks(rows):
        if queue is not None:
            queue(text, parameters)
        else:
            await connection.exec_driver_sql(text, parameters)
