"""Set-based writes for the chat hot path: many rows in one executemany, with SQLAlchemy's per-row work cut out.

Core's executemany builds a parameter dictionary per row and runs every column's bind processor through its
generic machinery; with a group-commit batch of a few hundred messages, outbox rows and conversation updates
that was several percent of a busy node's CPU (``docs/benchmarks.md``). On SQLite these helpers hand the
driver plain tuples instead: the statement text is built once per table and column set, and only the columns
whose type needs it go through the type's own bind processor (timestamps, JSON, booleans), so the stored
values are exactly what Core would store. PostgreSQL keeps Core's path (asyncpg takes typed values and
prepares statements itself).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.core.db import flushed_connection


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    keys: tuple[str, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor) where one is needed

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        keys, converters = self.keys, self.converters
        out = []
        for row in rows:
            values = [row[key] for key in keys]
            for position, convert in converters:
                values[position] = convert(values[position])
            out.append(tuple(values))
        return out


# Plans per dialect instance (bind processors depend on its settings, e.g. the JSON serialiser).
_PLANS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _Plan]] = weakref.WeakKeyDictionary()


def _plan(dialect: Any, key: tuple[Any, ...], table: Table, sql: str, keys: tuple[str, ...],
          types_of: tuple[str, ...]) -> _Plan:
    plans = _PLANS.setdefault(dialect, {})
    plan = plans.get(key)
    if plan is None:
        converters = []
        for position, column in enumerate(types_of):
            processor = table.c[column].type._cached_bind_processor(dialect)
            if processor is not None:
                converters.append((position, processor))
        plan = plans[key] = _Plan(sql, keys, tuple(converters))
    return plan


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dictionaries with the same keys, every column given that has no default) into ``table``."""
    if not rows:
        return
    connection = await flushed_connection(session)
    keys = tuple(rows[0])
    if connection.dialect.name != "sqlite":
        await connection.execute(insert(table), list(rows))
        return
    sql = (f"INSERT INTO {table.name} ({', '.join(keys)}) "  # noqa: S608 (table and column names, never data)
           f"VALUES ({', '.join('?' * len(keys))})")
    plan = _plan(connection.dialect, ("insert", table.name, keys), table, sql, keys, keys)
    await connection.exec_driver_sql(plan.sql, plan.parameters(rows))


async def update_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], *,
                      key: str = "id") -> None:
    """UPDATE ``table`` by its ``key`` column: each row gives ``key`` and the new values of the same columns."""
    if not rows:
        return
    connection = await flushed_connection(session)
    columns = tuple(name for name in rows[0] if name != key)
    if connection.dialect.name != "sqlite":
        statement = update(table).where(table.c[key] == bindparam("_key")).values(
            {name: bindparam(name) for name in columns})
        await connection.execute(statement, [{**row, "_key": row[key]} for row in rows])
        return
    sql = (f"UPDATE {table.name} SET {', '.join(f'{name} = ?' for name in columns)} "  # noqa: S608 (names only)
           f"WHERE {key} = ?")
    plan = _plan(connection.dialect, ("update", table.name, key, columns), table, sql, (*columns, key),
                 (*columns, key))
    await connection.exec_driver_sql(plan.sql, plan.parameters(rows))
