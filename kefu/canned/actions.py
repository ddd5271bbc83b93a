"""Writes on canned responses: create, edit (If-Match) and delete, shortcut unique within its scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from kefu.canned import policies
from kefu.canned.models import CannedResponse
from kefu.canned.schemas import CannedResponseCreate
from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, Forbidden, ValidationFailed, check_version
from kefu.core.ids import new_id
from kefu.events.uow import UnitOfWork


def _shortcut(raw: str) -> str:
    value = policies.normalise_shortcut(raw)
    if value is None:
        raise ValidationFailed("invalid_shortcut", details={"field": "shortcut"})
    return value


def _tags(raw: list[str]) -> list[str]:
    value = policies.normalise_tags(raw)
    if value is None:
        raise ValidationFailed("invalid_tag", details={"field": "tags", "max_length": policies.TAG_MAX_CHARS},
                               max_length=policies.TAG_MAX_CHARS)
    return value


def owner_key_for(*, scope: str, user_id: str | None, may_share: bool) -> str:
    """Who will own a new response; sharing with the team needs ``canned_responses:share``."""
    if scope == "shared":
        if not may_share:
            raise Forbidden("forbidden")
        return policies.SHARED
    if user_id is None:  # an API key is nobody's: it can only manage shared responses
        raise Forbidden("user_token_required")
    return user_id


async def _flush_unique(uow: UnitOfWork, row: CannedResponse) -> None:
    try:
        async with uow.session.begin_nested():
            uow.session.add(row)
            await uow.session.flush()
    except IntegrityError:
        raise Conflict("canned_shortcut_taken", details={"field": "shortcut"}) from None


async def do_create_canned(
    uow: UnitOfWork, *, tenant_id: str, owner_key: str, created_by: str, data: CannedResponseCreate
) -> CannedResponse:
    if not data.body_zh.strip() and not data.body_en.strip():
        raise ValidationFailed("canned_body_required", details={"fields": ["body_zh", "body_en"]})
    now = utcnow()
    row = CannedResponse(id=new_id("cr"), tenant_id=tenant_id, owner_key=owner_key,
                         shortcut=_shortcut(data.shortcut), title=data.title.strip() or data.title,
                         body_zh=data.body_zh, body_en=data.body_en, tags=_tags(data.tags), version=1,
                         created_by=created_by, created_at=now, updated_at=now)
    await _flush_unique(uow, row)
    return row


async def do_update_canned(
    uow: UnitOfWork, *, row: CannedResponse, changes: dict[str, Any], expected_version: int | None = None
) -> CannedResponse:
    check_version(row.version, expected_version)
    for field in ("shortcut", "title", "body_zh", "body_en", "tags"):
        if field in changes and changes[field] is None:
            raise ValidationFailed("validation_error", details={"field": field})
    updates = dict(changes)
    if "shortcut" in updates:
        updates["shortcut"] = _shortcut(updates["shortcut"])
    if "tags" in updates:
        updates["tags"] = _tags(updates["tags"])
    body_zh = updates.get("body_zh", row.body_zh)
    body_en = updates.get("body_en", row.body_en)
    if not body_zh.strip() and not body_en.strip():
        raise ValidationFailed("canned_body_required", details={"fields": ["body_zh", "body_en"]})
    changed = {k: v for k, v in updates.items() if getattr(row, k) != v}
    if not changed:
        return row
    for key, value in changed.items():
        setattr(row, key, value)
    row.version += 1
    row.updated_at = utcnow()
    await _flush_unique(uow, row)
    return row


async def do_delete_canned(uow: UnitOfWork, *, row: CannedResponse) -> None:
    await uow.session.delete(row)
    await uow.session.flush()
