"""Verifying that the shop vouches for a logged-in customer (identity verification).

Two forms, both HMAC-SHA256 with the inbox's identity secret, hex encoded:

* signed token (recommended): ``<customer_id>.<issued_at unix>.<nonce>.<hmac("<customer_id>.<issued_at>.<nonce>")>``
  accepted once (the nonce is remembered) and only within ``identity_token_max_age_seconds``;
* static hash (Intercom/Chatwoot style): ``external_id`` plus ``identity_hash = hmac(customer_id)``; it never
  expires and cannot be replay-checked, so an inbox may refuse it (``accept_static_identity_hash: false``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from kefu.core.errors import Unauthenticated
from kefu.core.security import constant_time_equals, hmac_sha256_hex

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
FUTURE_SKEW = 60


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    customer_id: str
    nonce: str | None
    issued_at: int | None


def make_identity_token(secret: str, customer_id: str, nonce: str, issued_at: int | None = None) -> str:
    """What the shop's backend computes (also used by the demo shop and tests)."""
    issued = int(time.time()) if issued_at is None else issued_at
    base = f"{customer_id}.{issued}.{nonce}"
    return f"{base}.{hmac_sha256_hex(secret, base)}"


def verify_identity_token(secret: str, token: str, *, max_age: int, now: float | None = None) -> VerifiedIdentity:
    parts = token.rsplit(".", 3)
    if len(parts) != 4:
        raise Unauthenticated("invalid_identity_token")
    customer_id, issued_raw, nonce, signature = parts
    if not customer_id or not issued_raw.isdigit() or not _NONCE.match(nonce) or not _HEX64.match(signature):
        raise Unauthenticated("invalid_identity_token")
    if not constant_time_equals(hmac_sha256_hex(secret, f"{customer_id}.{issued_raw}.{nonce}"), signature):
        raise Unauthenticated("invalid_identity_token")
    current = time.time() if now is None else now
    issued_at = int(issued_raw)
    if issued_at < current - max_age or issued_at > current + FUTURE_SKEW:
        raise Unauthenticated("identity_token_expired")
    return VerifiedIdentity(customer_id, nonce, issued_at)


def verify_static_hash(secret: str, customer_id: str, identity_hash: str) -> VerifiedIdentity:
    if not constant_time_equals(hmac_sha256_hex(secret, customer_id), identity_hash.strip().lower()):
        raise Unauthenticated("invalid_identity_token")
    return VerifiedIdentity(customer_id, None, None)
