"""Reads for auth: resolving a bearer token to a ``Principal``, and permission-checked user access."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.auth.models import ApiKey, AuthSession, User
from kefu.auth.schemas import Principal
from kefu.core.clock import utcnow
from kefu.core.errors import Unauthenticated
from kefu.core.security import constant_time_equals, token_hash

API_KEY_PREFIX = "kefu_"


def parse_api_key(token: str) -> tuple[str, str] | None:
    """Split ``kefu_<key id>_<secret>`` into (key id, secret)."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    rest = token[len(API_KEY_PREFIX):]
    key_id, sep, secret = rest.rpartition("_")
    if not sep or not key_id.startswith("key_") or not secret:
        return None
    return key_id, secret


async def authenticate(*, session: AsyncSession, token: str) -> Principal:
    """Resolve a session token or API key; raises ``invalid_token`` for anything unknown, expired or revoked."""
    now = utcnow()
    parsed = parse_api_key(token)
    if parsed is not None:
        key = await session.get(ApiKey, parsed[0])
        if (
            key is None
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= now)
            or not constant_time_equals(key.secret_hash, token_hash(parsed[1]))
        ):
            raise Unauthenticated("invalid_token")
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return Principal(kind="api_key", id=key.id, tenant_id=key.tenant_id, scopes=frozenset(key.scopes),
                         display_name=key.name)
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.token_hash == token_hash(token))
        )
    ).first()
    if row is None:
        raise Unauthenticated("invalid_token")
    auth_session, user = row
    if auth_session.revoked_at is not None or auth_session.expires_at <= now or not user.is_active:
        raise Unauthenticated("invalid_token")
    return Principal(kind="user", id=user.id, tenant_id=user.tenant_id, role=user.role, locale=user.locale,
                     display_name=user.display_name)
