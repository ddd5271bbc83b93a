"""Reads for auth: resolving a bearer token to a ``Principal``, and permission-checked user and key access.

``access_*`` is the only way to load a user or key for a caller; objects of another tenant raise the same
``NotFound`` as missing ones, so ids leak nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.auth.models import ApiKey, AuthSession, User
from kefu.auth.policies import ROLE_SCOPES
from kefu.auth.schemas import MeRead, Principal, UserRead
from kefu.core.clock import utcnow
from kefu.core.errors import NotFound, Unauthenticated
from kefu.core.ids import has_prefix
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
                         expires_at=key.expires_at,
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
    return principal_of(user, expires_at=auth_session.expires_at)


def principal_of(user: User, *, expires_at: datetime | None = None) -> Principal:
    """The principal a user acts as once signed in (``expires_at``: when their session ends)."""
    return Principal(kind="user", id=user.id, tenant_id=user.tenant_id, role=user.role, locale=user.locale,
                     display_name=user.display_name, expires_at=expires_at)


async def get_user_by_email(*, session: AsyncSession, email: str) -> User | None:
    return (await session.scalars(select(User).where(User.email == email))).first()


async def access_user(*, session: AsyncSession, tenant_id: str, user_id: str) -> User:
    if not has_prefix(user_id, "usr"):
        raise NotFound("user_not_found")
    user = await session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound("user_not_found")
    return user


async def list_users(
    *,
    session: AsyncSession,
    tenant_id: str,
    after_id: str | None = None,
    limit: int = 50,
    role: str | None = None,
    is_active: bool | None = None,
) -> list[User]:
    """Users of one tenant in id (= creation) order; fetches ``limit + 1`` to tell whether more exist."""
    query = select(User).where(User.tenant_id == tenant_id)
    if after_id is not None:
        query = query.where(User.id > after_id)
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active.is_(is_active))
    return list((await session.scalars(query.order_by(User.id).limit(limit + 1))).all())


async def count_active_admins(*, session: AsyncSession, tenant_id: str) -> int:
    return await session.scalar(
        select(func.count()).select_from(User)
        .where(User.tenant_id == tenant_id, User.role == "admin", User.is_active.is_(True))) or 0


def user_read(user: User) -> UserRead:
    return UserRead.model_validate(user)


def me_read(user: User) -> MeRead:
    return MeRead.model_validate(
        {**UserRead.model_validate(user).model_dump(), "tenant_id": user.tenant_id,
         "scopes": sorted(ROLE_SCOPES.get(user.role, frozenset()))})


async def access_api_key(*, session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    if not has_prefix(key_id, "key"):
        raise NotFound("api_key_not_found")
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound("api_key_not_found")
    return key


async def list_api_keys(
    *,
    session: AsyncSession,
    tenant_id: str,
    after_id: str | None = None,
    limit: int = 50,
    revoked: bool | None = None,
) -> list[ApiKey]:
    """Keys of one tenant in id (= creation) order; fetches ``limit + 1`` to tell whether more exist."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if after_id is not None:
        query = query.where(ApiKey.id > after_id)
    if revoked is True:
        query = query.where(ApiKey.revoked_at.is_not(None))
    elif revoked is False:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list((await session.scalars(query.order_by(ApiKey.id).limit(limit + 1))).all())
