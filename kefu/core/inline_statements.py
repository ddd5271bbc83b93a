"""Pre-built Core statements run straight on the group committer's SQLite connection.

A group-commit transaction of one chat message runs half a dozen small pre-built statements, and going
through SQLAlchemy's execution (a greenlet hop, an execution context, result metadata) cost 60-70 µs each
against about 7 µs for the driver call (``bench/group_commit.py``): most of a small transaction's fixed cost,
paid 100-200 times a second by a node under steady chat load. On the inline connection
(``kefu.core.sqlite_inline``) nothing needs to wait, so the statement is compiled once, its "expanding" IN
lists rendered once per list length, and each call binds the values through the same bind processors
SQLAlchemy would use and converts the selected columns with the same result processors: the rows read back
are the values SQLAlchemy would return, as plain tuples.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kefu.core.sqlite_inline import InlineConnection

Getter = tuple[str, int | None, Any, Callable[[Any], Any] | None]  # (parameter, list index, constant, processor)


class Rows(list[tuple[Any, ...]]):
    """The rows of one statement: iterate them as tuples, or take the first value with ``scalar()``."""

    def scalar(self) -> Any:
        return self[0][0] if self else None


@dataclass(slots=True)
class _Rendered:
    sql: str
    getters: tuple[Getter, ...]

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, index, constant, process in self.getters:
            if name in params:
                value = params[name] if index is None else params[name][index]
            else:
                value = constant
            out.append(value if process is None else process(value))
        return tuple(out)


class _Plan:
    def __init__(self, statement: Any, dialect: Any) -> None:
        self.compiled = statement.compile(dialect=dialect)
        self.expanding = tuple(sorted(name for name, bind in self.compiled.binds.items() if bind.expanding))
        self.rendered: dict[tuple[int, ...], _Rendered] = {}
        columns = getattr(statement, "selected_columns", None)
        processors = [column.type._cached_result_processor(dialect, None) for column in columns or ()]
        self.converters = tuple((i, p) for i, p in enumerate(processors) if p is not None)

    def render(self, params: Mapping[str, Any]) -> _Rendered:
        key = tuple(len(params[name]) if name in params else -1 for name in self.expanding)
        rendered = self.rendered.get(key)
        if rendered is None:
            expanded = self.compiled.construct_expanded_state(dict(params))
            origin = {item: (name, index) for name, items in expanded.parameter_expansion.items()
                      for index, item in enumerate(items)}
            getters = []
            for position in expanded.positiontup or ():
                name, index = origin.get(position, (position, None))
                constant = None if name in params else expanded.parameters[position]
                getters.append((name, index, constant, expanded.processors.get(position)))
            rendered = self.rendered[key] = _Rendered(expanded.statement, tuple(getters))
        return rendered

    def rows(self, values: list[tuple[Any, ...]]) -> Rows:
        if not self.converters:
            return Rows(values)
        out = Rows()
        for row in values:
            converted = list(row)
            for index, convert in self.converters:
                converted[index] = convert(converted[index])
            out.append(tuple(converted))
        return out


# Per dialect, per statement object: weak keys, so a statement built per call (slow here, as through
# SQLAlchemy) is at least not kept for ever.
_PLANS: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, _Plan]] = weakref.WeakKeyDictionary()


def _plan(dialect: Any, statement: Any) -> _Plan:
    plans = _PLANS.get(dialect)
    if plans is None:
        plans = _PLANS[dialect] = weakref.WeakKeyDictionary()
    plan = plans.get(statement)
    if plan is None:
        plan = plans[statement] = _Plan(statement, dialect)
    return plan


async def execute(driver: InlineConnection, dialect: Any, statement: Any,
                  params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> Rows:
    """Run ``statement`` on the committer's connection (inside its open transaction); a list of parameter
    sets runs it once per set (an UPDATE, say; IN lists of the same length in every set) and returns no rows."""
    plan = _plan(dialect, statement)
    if isinstance(params, Sequence):
        if not params:
            return Rows()
        rendered = plan.render(params[0])
        arguments = [rendered.arguments(one) for one in params]
        await driver.call(_executemany, rendered.sql, arguments)
        return Rows()
    rendered = plan.render(params or {})
    values = await driver.call(_fetchall, rendered.sql, rendered.arguments(params or {}))
    return plan.rows(values)


def _fetchall(connection: Any, sql: str, arguments: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cursor = connection.execute(sql, arguments)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _executemany(connection: Any, sql: str, arguments: list[tuple[Any, ...]]) -> None:
    connection.executemany(sql, arguments).close()
