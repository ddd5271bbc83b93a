"""Cursor pagination: ``?limit=&cursor=`` → ``{"data": [...], "next_cursor": ...}``.

Ids are time-ordered, so "creation then id" order is id order and the cursor is the last id, opaque to
clients (base64url).
"""

from __future__ import annotations

import base64
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from kefu.core.errors import ValidationFailed

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("invalid_cursor", details={"field": "cursor"}) from None
    if "_" not in value or len(value) > 64:
        raise ValidationFailed("invalid_cursor", details={"field": "cursor"})
    return value


def page_of(items: list[T], limit: int, id_of=lambda item: item.id) -> Page[T]:  # type: ignore[no-untyped-def]
    """Build a page from up to ``limit + 1`` fetched rows (the extra row says whether more exist)."""
    has_more = len(items) > limit
    items = items[:limit]
    return Page[T](data=items, next_cursor=encode_cursor(id_of(items[-1])) if has_more and items else None)
