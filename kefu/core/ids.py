"""Opaque, time-ordered ids with a type prefix (``conv_01J…``), as the API style asks."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    """Return a new id such as ``msg_01JD…``; lexical order follows creation time."""
    return f"{prefix}_{str(ULID()).lower()}"


def has_prefix(value: str, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix + "_") and len(value) == len(prefix) + 27
