"""Appending to the audit log: one hash chain per tenant, never forked, never rewritten.

Appends to one tenant's chain are serialised for the rest of the transaction: on PostgreSQL by a
transaction-scoped advisory lock keyed by the tenant, on SQLite by the write lock every transaction takes
with ``BEGIN IMMEDIATE`` (see ``kefu.core.db``). The unique ``(tenant_id, seq)`` constraint is the backstop:
were two appends ever to race, one fails instead of forking the chain. Call ``do_record`` as the last
write of a use case, so the chain lock is held as briefly as possible.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

from kefu.audit import service as audit_service
from kefu.audit.models import AuditEntry
from kefu.core.clock import utcnow
from kefu.events.uow import UnitOfWork

if TYPE_CHECKING:
    from kefu.auth.schemas import Principal

# First key of the two-key advisory lock, so audit locks never collide with other uses of advisory locks.
_AUDIT_LOCK_CLASS = 0x6B656675  # "kefu"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _normalise_details(details: dict[str, Any] | None) -> dict[str, Any]:
    # Hash exactly what the database will give back: JSON types only, string keys.
    return json.loads(json.dumps(details or {}, default=_jsonable))


async def _lock_chain(uow: UnitOfWork, tenant_id: str) -> None:
    if uow.session.get_bind().dialect.name == "postgresql":
        await uow.session.execute(text("SELECT pg_advisory_xact_lock(:cls, hashtext(:tenant))"),
                                  {"cls": _AUDIT_LOCK_CLASS, "tenant": tenant_id})


async def do_record(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    actor: Principal | None,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append an entry to the tenant's chain; ``actor`` None means the system itself (or nobody signed in)."""
    await _lock_chain(uow, tenant_id)
    last = (
        await uow.session.execute(
            select(AuditEntry.seq, AuditEntry.hash)
            .where(AuditEntry.tenant_id == tenant_id)
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        )
    ).first()
    seq = last.seq + 1 if last else 1
    prev_hash = last.hash if last else audit_service.GENESIS_HASH
    now = utcnow()
    # The hash covers the RFC 3339 form (milliseconds), so store exactly that precision.
    at = now.replace(microsecond=now.microsecond // 1000 * 1000)
    actor_type = actor.kind if actor is not None else "system"
    actor_id = actor.id if actor is not None else None
    clean = _normalise_details(details)
    ip = ip[:64] if ip else None
    entry = AuditEntry(
        tenant_id=tenant_id, seq=seq, at=at, actor_type=actor_type, actor_id=actor_id, action=action,
        target_type=target_type, target_id=target_id, ip=ip, details=clean, prev_hash=prev_hash,
        hash=audit_service.entry_hash(tenant_id=tenant_id, seq=seq, at=at, actor_type=actor_type, actor_id=actor_id,
                                      action=action, target_type=target_type, target_id=target_id, ip=ip,
                                      details=clean, prev_hash=prev_hash),
    )
    uow.session.add(entry)
    await uow.session.flush()
    return entry
