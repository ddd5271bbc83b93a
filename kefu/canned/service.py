"""Reads on canned responses. A personal response is visible to its owner only; for anyone else it does
not exist (same answer as a missing id)."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.canned.models import CannedResponse
from kefu.canned.policies import SHARED
from kefu.canned.schemas import CannedResponseRead
from kefu.core.db import like_escaped
from kefu.core.errors import NotFound


def _visible(tenant_id: str, user_id: str | None):  # type: ignore[no-untyped-def]
    owners = [SHARED] if user_id is None else [SHARED, user_id]
    return and_(CannedResponse.tenant_id == tenant_id, CannedResponse.owner_key.in_(owners))


async def access_canned(*, session: AsyncSession, tenant_id: str, user_id: str | None,
                        canned_response_id: str) -> CannedResponse:
    row = await session.get(CannedResponse, canned_response_id) if isinstance(canned_response_id, str) else None
    if row is None or row.tenant_id != tenant_id or row.owner_key not in (SHARED, user_id):
        raise NotFound("canned_response_not_found")
    return row


def _like(text: str) -> str:
    return "%" + like_escaped(text) + "%"


async def list_canned(
    *,
    session: AsyncSession,
    tenant_id: str,
    user_id: str | None,
    scope: str = "all",
    shortcut_prefix: str | None = None,
    q: str | None = None,
    tag: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 50,
) -> list[CannedResponse]:
    """Shared and the caller's personal responses, by shortcut then id; ``after`` = (shortcut, id) of the last."""
    query = select(CannedResponse).where(_visible(tenant_id, user_id))
    if scope == "shared":
        query = query.where(CannedResponse.owner_key == SHARED)
    elif scope == "personal":
        query = query.where(CannedResponse.owner_key == (user_id or "-"))
    if shortcut_prefix:
        prefix = like_escaped(shortcut_prefix) + "%"
        query = query.where(CannedResponse.shortcut.like(prefix, escape="\\"))
    if q:
        pattern = _like(q.lower())
        query = query.where(or_(*(func.lower(column).like(pattern, escape="\\") for column in (
            CannedResponse.shortcut, CannedResponse.title, CannedResponse.body_zh, CannedResponse.body_en))))
    if after is not None:
        query = query.where(or_(CannedResponse.shortcut > after[0],
                                and_(CannedResponse.shortcut == after[0], CannedResponse.id > after[1])))
    rows = list((await session.scalars(query.order_by(CannedResponse.shortcut, CannedResponse.id))).all()
                ) if tag else list((await session.scalars(
                    query.order_by(CannedResponse.shortcut, CannedResponse.id).limit(limit))).all())
    if tag:
        # Tags are a small JSON list; filtering in Python keeps one query shape on SQLite and PostgreSQL.
        rows = [r for r in rows if tag in (r.tags or [])][:limit]
    return rows


def canned_read(row: CannedResponse) -> CannedResponseRead:
    shared = row.owner_key == SHARED
    return CannedResponseRead(
        id=row.id, scope="shared" if shared else "personal", owner_id=None if shared else row.owner_key,
        shortcut=row.shortcut, title=row.title, body_zh=row.body_zh, body_en=row.body_en, tags=list(row.tags or []),
        version=row.version, created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at)
