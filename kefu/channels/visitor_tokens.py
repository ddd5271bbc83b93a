"""Short-lived, signed widget visitor tokens (stateless, so any node can verify them).

Payload: tenant, inbox, contact, visitor id, expiry. Signed with the deployment secret; the visitor keeps it
in localStorage to resume the same conversation after a reload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from kefu.core.errors import Unauthenticated
from kefu.core.security import sign_blob, unsign_blob

PREFIX = "vt1."


@dataclass(frozen=True, slots=True)
class VisitorClaims:
    tenant_id: str
    inbox_id: str
    contact_id: str
    visitor_id: str
    verified: bool
    expires_at: int


def issue(secret: str, claims: VisitorClaims) -> str:
    payload = orjson.dumps({"t": claims.tenant_id, "i": claims.inbox_id, "c": claims.contact_id,
                            "v": claims.visitor_id, "ok": claims.verified, "exp": claims.expires_at})
    return PREFIX + sign_blob(secret + ":visitor", payload)


def verify(secret: str, token: str, *, now: float | None = None) -> VisitorClaims:
    """Return the claims of a valid token; raises ``invalid_visitor_token`` otherwise."""
    if not token.startswith(PREFIX):
        raise Unauthenticated("invalid_visitor_token")
    raw = unsign_blob(secret + ":visitor", token[len(PREFIX):])
    if raw is None:
        raise Unauthenticated("invalid_visitor_token")
    try:
        data = orjson.loads(raw)
        claims = VisitorClaims(data["t"], data["i"], data["c"], data["v"], bool(data.get("ok")), int(data["exp"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise Unauthenticated("invalid_visitor_token") from None
    if claims.expires_at <= (now if now is not None else time.time()):
        raise Unauthenticated("invalid_visitor_token")
    return claims
