"""Reads on the audit log: listing entries for a tenant, and verifying the hash chain.

Each entry's hash covers its own fields and the previous entry's hash, so editing an entry breaks its
hash, deleting one leaves a gap in ``seq``, and re-hashing an edited entry breaks the next entry's link.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.audit.models import AuditEntry
from kefu.audit.schemas import ChainReport
from kefu.core.clock import isoformat

GENESIS_HASH = "0" * 64
_VERIFY_BATCH = 1000


def canonical_json(value: Any) -> str:
    """Serialise deterministically (sorted keys, no spaces, UTF-8 kept) so the hash is reproducible."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(
    *,
    tenant_id: str,
    seq: int,
    at: datetime,
    actor_type: str,
    actor_id: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    ip: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 hex over the canonical JSON of an entry's fields and its predecessor's hash."""
    payload = {
        "tenant_id": tenant_id,
        "seq": seq,
        "at": isoformat(at),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "ip": ip,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def hash_of(entry: Any) -> str:
    """Recompute the hash a stored entry (ORM object or row) should carry."""
    return entry_hash(tenant_id=entry.tenant_id, seq=entry.seq, at=entry.at, actor_type=entry.actor_type,
                      actor_id=entry.actor_id, action=entry.action, target_type=entry.target_type,
                      target_id=entry.target_id, ip=entry.ip, details=entry.details or {}, prev_hash=entry.prev_hash)


async def list_entries(
    *,
    session: AsyncSession,
    tenant_id: str,
    after_id: int | None = None,
    limit: int = 50,
    action: str | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
) -> list[AuditEntry]:
    """Entries of one tenant in id (= append) order; fetches ``limit + 1`` to tell whether more exist."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if after_id is not None:
        query = query.where(AuditEntry.id > after_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if target_type is not None:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    return list((await session.scalars(query.order_by(AuditEntry.id).limit(limit + 1))).all())


async def verify_tenant_chain(*, session: AsyncSession, tenant_id: str) -> ChainReport:
    """Walk one tenant's chain in ``seq`` order and stop at the first broken entry."""
    checked = 0
    expected_seq = 1
    prev_hash = GENESIS_HASH
    while True:
        # Plain rows, not ORM objects: a long chain is then verified without filling the identity map.
        batch = (
            await session.execute(
                select(*AuditEntry.__table__.columns)
                .where(AuditEntry.tenant_id == tenant_id, AuditEntry.seq >= expected_seq)
                .order_by(AuditEntry.seq)
                .limit(_VERIFY_BATCH)
            )
        ).all()
        for entry in batch:
            checked += 1
            fault = None
            if entry.seq != expected_seq:
                fault = "seq_gap"  # entries expected_seq .. entry.seq - 1 were deleted
            elif entry.prev_hash != prev_hash:
                fault = "prev_hash_mismatch"
            elif entry.hash != hash_of(entry):
                fault = "hash_mismatch"
            if fault is not None:
                return ChainReport(tenant_id=tenant_id, entries_checked=checked, ok=False, first_bad_seq=expected_seq,
                                   reason=fault, last_seq=expected_seq - 1, head_hash=prev_hash)
            expected_seq += 1
            prev_hash = entry.hash
        if len(batch) < _VERIFY_BATCH:
            break
    return ChainReport(tenant_id=tenant_id, entries_checked=checked, ok=True, last_seq=expected_seq - 1,
                       head_hash=prev_hash if checked else None)


async def verify_chain(*, session: AsyncSession, tenant_id: str | None = None) -> list[ChainReport]:
    """Verify one tenant's chain, or every tenant that has audit entries."""
    if tenant_id is not None:
        tenant_ids = [tenant_id]
    else:
        tenant_ids = list(
            (await session.scalars(select(AuditEntry.tenant_id).distinct().order_by(AuditEntry.tenant_id))).all())
    return [await verify_tenant_chain(session=session, tenant_id=t) for t in tenant_ids]
