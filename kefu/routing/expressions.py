"""The target expression language: a small, safe parser (never ``eval``) and an evaluator.

Grammar (keywords case-insensitive)::

    expr       := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | comparison
    comparison := operand [op operand]
    op         := "==" | "=" | "!=" | ">" | ">=" | "<" | "<=" | "HAS" | "IN" | "NOT IN" | "CONTAINS"
    operand    := number | string | "true" | "false" | "null" | list | path | "(" expr ")"
    list       := "[" [operand ("," operand)*] "]"
    path       := name ("." name)*

A path starting with ``task.`` reads the task's attributes, ``agent.``/``worker.`` the agent's; a bare path
reads the *subject* of the expression (the agent for queue and target expressions, the task for workflow
filters). A missing attribute is ``null``; an ordering comparison with ``null`` or mixed types is false
instead of an error, so one agent with odd attributes can never stop routing. ``HAS`` asks whether a list
(or dict) on the left holds the right value; ``IN`` the opposite; ``CONTAINS`` is a substring test.

Parsing errors carry the character position, so the API can say exactly where a saved expression is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 2000
MAX_DEPTH = 32

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|>=|<=|=|>|<)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\-\u4e00-\u9fff]*(?:\.[A-Za-z0-9_\-\u4e00-\u9fff]+)*)
""", re.VERBOSE)

KEYWORDS = {"and", "or", "not", "has", "in", "contains", "true", "false", "null"}


class ExpressionError(ValueError):
    """A malformed expression; ``position`` is the 0-based character offset of the problem."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at position {position}")
        self.reason = reason
        self.position = position


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number | string | op | punct | name | keyword | end
    value: Any
    position: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; an unexpected character raises with its position."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError("too_long", MAX_LENGTH)
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionError("unexpected_character", position)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "number":
            tokens.append(Token("number", float(raw) if "." in raw else int(raw), position))
        elif kind == "string":
            tokens.append(Token("string", re.sub(r"\\(.)", r"\1", raw[1:-1]), position))
        elif kind == "name":
            if raw.lower() in KEYWORDS:
                tokens.append(Token("keyword", raw.lower(), position))
            else:
                tokens.append(Token("name", tuple(raw.split(".")), position))
        elif kind in ("op", "punct"):
            tokens.append(Token(kind, "==" if raw == "=" else raw, position))
        position = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


# --- AST ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Any


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    operands: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Any
    right: Any


_COMPARE_OPS = {"==", "!=", ">", ">=", "<", "<="}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.value in words

    def parse(self) -> Any:
        if self.current.kind == "end":
            raise ExpressionError("empty_expression", 0)
        node = self.parse_or()
        if self.current.kind != "end":
            raise ExpressionError("unexpected_token", self.current.position)
        return node

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError("too_deeply_nested", self.current.position)

    def parse_or(self) -> Any:
        operands = [self.parse_and()]
        while self.at_keyword("or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def parse_and(self) -> Any:
        operands = [self.parse_not()]
        while self.at_keyword("and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def parse_not(self) -> Any:
        if self.at_keyword("not"):
            self.advance()
            self._nest()
            node = Not(self.parse_not())
            self.depth -= 1
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Any:
        left = self.parse_operand()
        token = self.current
        if token.kind == "op" and token.value in _COMPARE_OPS:
            self.advance()
            return Compare(token.value, left, self.parse_operand())
        if self.at_keyword("has", "in", "contains"):
            self.advance()
            return Compare(token.value, left, self.parse_operand())
        if self.at_keyword("not") and self.tokens[self.index + 1].kind == "keyword" \
                and self.tokens[self.index + 1].value == "in":
            self.index += 2
            return Compare("not in", left, self.parse_operand())
        return left

    def parse_operand(self) -> Any:
        token = self.current
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value)
        if token.kind == "keyword" and token.value in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[token.value])
        if token.kind == "name":
            self.advance()
            return Path(token.value)
        if token.kind == "punct" and token.value == "(":
            self.advance()
            self._nest()
            node = self.parse_or()
            self.depth -= 1
            if not (self.current.kind == "punct" and self.current.value == ")"):
                raise ExpressionError("expected_closing_parenthesis", self.current.position)
            self.advance()
            return node
        if token.kind == "punct" and token.value == "[":
            self.advance()
            items: list[Any] = []
            if not (self.current.kind == "punct" and self.current.value == "]"):
                while True:
                    item = self.current
                    if item.kind in ("number", "string"):
                        items.append(item.value)
                    elif item.kind == "keyword" and item.value in ("true", "false", "null"):
                        items.append({"true": True, "false": False, "null": None}[item.value])
                    else:
                        raise ExpressionError("expected_literal", item.position)
                    self.advance()
                    if self.current.kind == "punct" and self.current.value == ",":
                        self.advance()
                        continue
                    break
            if not (self.current.kind == "punct" and self.current.value == "]"):
                raise ExpressionError("expected_closing_bracket", self.current.position)
            self.advance()
            return ListLit(tuple(items))
        if token.kind == "end":
            raise ExpressionError("unexpected_end", token.position)
        raise ExpressionError("expected_value", token.position)


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression with what the engine needs to cache its results."""

    source: str
    tree: Any
    task_paths: tuple[tuple[str, ...], ...]  # task attributes it reads (empty: the answer depends on the agent only)
    subject_paths: tuple[tuple[str, ...], ...] = ()  # bare paths (read from the subject)
    fn: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any] | None = None

    def evaluate(self, subject: dict[str, Any], task: dict[str, Any] | None = None,
                 agent: dict[str, Any] | None = None) -> bool:
        """True if the expression holds for ``subject`` (bare paths) with ``task``/``agent`` for prefixed ones."""
        if self.fn is not None:
            return bool(self.fn(subject, task or {}, agent if agent is not None else subject))
        return _truthy(_eval(self.tree, subject, task or {}, agent if agent is not None else subject))


def parse(text: str) -> Expression:
    """Parse ``text``; raises ``ExpressionError`` with the position of the first problem."""
    tree = _Parser(text).parse()
    paths: list[tuple[str, ...]] = []
    _collect_task_paths(tree, paths)
    bare: list[tuple[str, ...]] = []
    _collect_subject_paths(tree, bare)
    return Expression(text, tree, tuple(dict.fromkeys(paths)), tuple(dict.fromkeys(bare)), _closure(tree))


_CACHE: dict[str, Expression] = {}


def compiled(text: str) -> Expression:
    """``parse`` with a process-wide cache (expressions are saved rarely and evaluated constantly)."""
    found = _CACHE.get(text)
    if found is None:
        if len(_CACHE) > 10_000:
            _CACHE.clear()
        found = _CACHE[text] = parse(text)
    return found


_SPLITS: dict[str, tuple[Expression | None, Expression | None]] = {}


def split_task_free(expression: Expression) -> tuple[Expression | None, Expression | None]:
    """Split a conjunction into the operands that read only the agent and the ones that read the task.

    ``a AND b`` holds exactly when both parts hold, so eligibility can be computed once per expression for
    the task-free part and then, for each distinct task, only over the agents that passed it. Returns
    (None, expression) when there is nothing to split.
    """
    found = _SPLITS.get(expression.source)
    if found is not None:
        return found
    tree = expression.tree
    free: list[Any] = []
    bound: list[Any] = []
    if isinstance(tree, BoolOp) and tree.op == "and" and expression.task_paths:
        for operand in tree.operands:
            paths: list[tuple[str, ...]] = []
            _collect_task_paths(operand, paths)
            (bound if paths else free).append(operand)
    if not free or not bound:
        found = (None, expression)
    else:
        found = (_part(expression.source + "\x00agent", free), _part(expression.source + "\x00task", bound))
    if len(_SPLITS) > 10_000:
        _SPLITS.clear()
    _SPLITS[expression.source] = found
    return found


def _part(source: str, operands: list[Any]) -> Expression:
    tree = operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))
    paths: list[tuple[str, ...]] = []
    _collect_task_paths(tree, paths)
    bare: list[tuple[str, ...]] = []
    _collect_subject_paths(tree, bare)
    return Expression(source, tree, tuple(dict.fromkeys(paths)), tuple(dict.fromkeys(bare)), _closure(tree))


def _collect_subject_paths(node: Any, out: list[tuple[str, ...]]) -> None:
    if isinstance(node, Path):
        if node.parts[0] not in ("task", "agent", "worker"):
            out.append(node.parts)
    elif isinstance(node, Not):
        _collect_subject_paths(node.operand, out)
    elif isinstance(node, BoolOp):
        for operand in node.operands:
            _collect_subject_paths(operand, out)
    elif isinstance(node, Compare):
        _collect_subject_paths(node.left, out)
        _collect_subject_paths(node.right, out)


def _collect_task_paths(node: Any, out: list[tuple[str, ...]]) -> None:
    if isinstance(node, Path):
        if node.parts[0] == "task":
            out.append(node.parts[1:])
    elif isinstance(node, Not):
        _collect_task_paths(node.operand, out)
    elif isinstance(node, BoolOp):
        for operand in node.operands:
            _collect_task_paths(operand, out)
    elif isinstance(node, Compare):
        _collect_task_paths(node.left, out)
        _collect_task_paths(node.right, out)


def lookup(root: Any, parts: tuple[str, ...]) -> Any:
    """Follow ``parts`` through nested dicts; anything missing is None."""
    value = root
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        else:
            return None
        if value is None:
            return None
    return value


def _resolve(parts: tuple[str, ...], subject: dict[str, Any], task: dict[str, Any], agent: dict[str, Any]) -> Any:
    head = parts[0]
    if head == "task":
        return lookup(task, parts[1:]) if len(parts) > 1 else task
    if head in ("agent", "worker"):
        return lookup(agent, parts[1:]) if len(parts) > 1 else agent
    return lookup(subject, parts)


Fn = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]


def _closure(node: Any) -> Fn:
    """Turn the tree into nested closures once: the same semantics as ``_eval`` without re-walking the tree
    (the matcher evaluates each expression for every agent)."""
    if isinstance(node, Literal):
        value = node.value
        return lambda s, t, a: value
    if isinstance(node, ListLit):
        items = list(node.items)
        return lambda s, t, a: items
    if isinstance(node, Path):
        parts = node.parts
        head, rest = parts[0], parts[1:]
        if head == "task":
            return (lambda s, t, a: lookup(t, rest)) if rest else (lambda s, t, a: t)
        if head in ("agent", "worker"):
            return (lambda s, t, a: lookup(a, rest)) if rest else (lambda s, t, a: a)
        if len(parts) == 1:
            return lambda s, t, a: s.get(head) if isinstance(s, dict) else None
        return lambda s, t, a: lookup(s, parts)
    if isinstance(node, Not):
        inner = _closure(node.operand)
        return lambda s, t, a: not inner(s, t, a)
    if isinstance(node, BoolOp):
        parts_fn = [_closure(o) for o in node.operands]
        if node.op == "and":
            return lambda s, t, a: all(f(s, t, a) for f in parts_fn)
        return lambda s, t, a: any(f(s, t, a) for f in parts_fn)
    left, right, op = _closure(node.left), _closure(node.right), node.op
    return lambda s, t, a: compare(op, left(s, t, a), right(s, t, a))


def _truthy(value: Any) -> bool:
    return bool(value)


def _eval(node: Any, subject: dict[str, Any], task: dict[str, Any], agent: dict[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        return _resolve(node.parts, subject, task, agent)
    if isinstance(node, ListLit):
        return list(node.items)
    if isinstance(node, Not):
        return not _truthy(_eval(node.operand, subject, task, agent))
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(_truthy(_eval(o, subject, task, agent)) for o in node.operands)
        return any(_truthy(_eval(o, subject, task, agent)) for o in node.operands)
    left = _eval(node.left, subject, task, agent)
    right = _eval(node.right, subject, task, agent)
    return compare(node.op, left, right)


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _member(container: Any, item: Any) -> bool:
    if isinstance(container, dict):
        return _norm(item) in {_norm(k) for k in container}
    if isinstance(container, (list, tuple, set)):
        if isinstance(item, (list, tuple)):  # any overlap
            wanted = {_norm(i) for i in item if not isinstance(i, (list, dict))}
            return any(_norm(c) in wanted for c in container if not isinstance(c, (list, dict)))
        return any(_norm(c) == _norm(item) for c in container if not isinstance(c, (list, dict)))
    return False


def compare(op: str, left: Any, right: Any) -> bool:
    """Apply a comparison operator; type mismatches are false, never errors. Strings compare case-insensitively."""
    if op == "==":
        if isinstance(left, bool) or isinstance(right, bool):
            return type(left) is type(right) and left == right
        return _norm(left) == _norm(right)
    if op == "!=":
        return not compare("==", left, right)
    if op in ("has",):
        return _member(left, right)
    if op == "in":
        return _member(right, left)
    if op == "not in":
        return not _member(right, left)
    if op == "contains":
        return isinstance(left, str) and isinstance(right, str) and right.lower() in left.lower()
    numeric = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return False
    if isinstance(left, numeric) and isinstance(right, numeric):
        pass
    elif isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    else:
        return False
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    return left <= right
