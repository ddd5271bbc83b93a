"""REST routes: reading the caller's tenant's audit log (admins and supervisors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kefu.api.deps import Scoped, UoWDep
from kefu.api.errors import AUTH_ERRORS, error_responses
from kefu.api.pagination import Cursor, Limit, Page, decode_cursor, page_of
from kefu.audit import service as audit_service
from kefu.audit.schemas import AuditEntryRead
from kefu.core.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/audit-entries", tags=["audit"])

_CURSOR_PREFIX = "aud_"
_TOKEN = r"^[A-Za-z0-9_.:-]+$"  # ids and action names; also keeps NUL bytes away from PostgreSQL
Filter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=_TOKEN)]


def _after_id(cursor: str | None) -> int | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    digits = value[len(_CURSOR_PREFIX):]
    if not value.startswith(_CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 18:
        raise ValidationFailed("invalid_cursor", details={"field": "cursor"})
    return int(digits)


@router.get("", summary="List audit entries of your tenant in the order they were written",
            description="Filters combine with AND. Each entry carries `hash` and `prev_hash` of the tenant's "
                        "hash chain; `kefu audit verify` checks the whole chain.",
            response_model=Page[AuditEntryRead],
            responses=error_responses(*AUTH_ERRORS, "validation_error", "invalid_cursor"))
async def list_audit_entries(
    uow: UoWDep,
    actor: Scoped("audit:read"),
    limit: Limit = 50,
    cursor: Cursor = None,
    action: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_TOKEN, examples=["user.role_changed"])] = None,
    actor_id: Filter = None,
    target_type: Filter = None,
    target_id: Filter = None,
) -> Page[AuditEntryRead]:
    rows = await audit_service.list_entries(session=uow.session, tenant_id=actor.tenant_id, after_id=_after_id(cursor),
                                            limit=limit, action=action, actor_id=actor_id, target_type=target_type,
                                            target_id=target_id)
    return page_of([AuditEntryRead.model_validate(r) for r in rows], limit,
                   id_of=lambda entry: f"{_CURSOR_PREFIX}{entry.id}")
