"""Audit log shapes: entries as the API shows them, and the result of verifying a tenant's chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from kefu.core.schemas import ReadModel

ActorType = Literal["user", "api_key", "system", "visitor"]
ChainFault = Literal["hash_mismatch", "seq_gap", "prev_hash_mismatch"]

# Stable action names (documented in docs/api.md); other domains add their own as "<noun>.<verb>".
LOGIN_SUCCEEDED = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOGOUT = "auth.logout"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_ROLE_CHANGED = "user.role_changed"
USER_DEACTIVATED = "user.deactivated"
USER_REACTIVATED = "user.reactivated"
PASSWORD_CHANGED = "user.password_changed"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"


class AuditEntryRead(ReadModel):
    """One entry; ``hash`` and ``prev_hash`` let an outside party anchor and re-check the chain."""

    id: int
    seq: int
    at: datetime
    actor_type: ActorType
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": 42, "seq": 7, "at": "2026-01-05T08:30:12.345Z", "actor_type": "user",
        "actor_id": "usr_01jgx3v7k2m4n5p6q7r8s9t0vw", "action": "user.role_changed", "target_type": "user",
        "target_id": "usr_01jgx3w1a2b3c4d5e6f7g8h9jk", "ip": "203.0.113.7",
        "details": {"from": "agent", "to": "supervisor"}, "prev_hash": "9f2c…", "hash": "4b1e…"}]})


class ChainReport(BaseModel):
    """The verdict on one tenant's chain. ``head_hash`` is worth recording elsewhere: only an outside copy
    of the newest hash reveals entries cut off the end of the chain."""

    tenant_id: str
    entries_checked: int
    ok: bool
    first_bad_seq: int | None = None
    reason: ChainFault | None = None
    last_seq: int = 0
    head_hash: str | None = None
