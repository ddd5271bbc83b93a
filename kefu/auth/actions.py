"""Writes for auth: users, logins (rate limited), logouts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from kefu.auth.models import AuthSession, LoginFailure, User
from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, RateLimited, Unauthenticated, ValidationFailed
from kefu.core.ids import new_id
from kefu.core.security import hash_password, needs_rehash, new_token, token_hash, verify_password
from kefu.core.settings import Settings
from kefu.events.uow import UnitOfWork

MIN_PASSWORD = 10


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def do_create_user(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    email: str,
    display_name: str,
    role: str,
    password: str,
    locale: str = "zh",
) -> User:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed("password_too_short", details={"min_length": MIN_PASSWORD}, min_length=MIN_PASSWORD)
    email = normalise_email(email)
    if (await uow.session.scalars(select(User.id).where(User.email == email))).first() is not None:
        raise Conflict("email_taken")
    now = utcnow()
    user = User(id=new_id("usr"), tenant_id=tenant_id, email=email, display_name=display_name, role=role,
                locale=locale, password_hash=hash_password(password), is_active=True, created_at=now, updated_at=now)
    uow.session.add(user)
    try:
        await uow.session.flush()
    except IntegrityError:
        raise Conflict("email_taken") from None
    return user


async def do_login(
    uow: UnitOfWork, *, settings: Settings, email: str, password: str, ip: str
) -> tuple[User, str, AuthSession]:
    """Check credentials and open a session; returns (user, bearer token, session).

    Failed attempts are counted per email and per client address over a sliding window, in the database
    so that every node enforces the same limit.
    """
    session = uow.session
    now = utcnow()
    email = normalise_email(email)
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    by_email = await session.scalar(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.email == email, LoginFailure.at >= window_start))
    by_ip = await session.scalar(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.ip == ip, LoginFailure.at >= window_start))
    if (by_email or 0) >= settings.login_max_failures or (by_ip or 0) >= settings.login_max_failures * 4:
        raise RateLimited("login_rate_limited", retry_after=settings.login_window_seconds)
    user = (await session.scalars(select(User).where(User.email == email))).first()
    if not verify_password(user.password_hash if user else None, password) or user is None:
        session.add(LoginFailure(email=email, ip=ip, at=now))
        await session.flush()
        raise Unauthenticated("invalid_credentials")
    if not user.is_active:
        raise Unauthenticated("account_disabled")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, auth_session = await do_open_session(uow, user=user, settings=settings)
    return user, token, auth_session


async def do_open_session(uow: UnitOfWork, *, user: User, settings: Settings) -> tuple[str, AuthSession]:
    """Issue a new session token for ``user``; only its hash is stored."""
    now = utcnow()
    token = new_token()
    auth_session = AuthSession(id=new_id("ses"), tenant_id=user.tenant_id, user_id=user.id,
                               token_hash=token_hash(token), created_at=now,
                               expires_at=now + timedelta(seconds=settings.session_ttl_seconds))
    uow.session.add(auth_session)
    await uow.session.flush()
    return token, auth_session


async def do_logout(uow: UnitOfWork, *, token: str) -> None:
    await uow.session.execute(
        update(AuthSession).where(AuthSession.token_hash == token_hash(token), AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow()))
