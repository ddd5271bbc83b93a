"""Writes for auth: users, logins (rate limited), sessions, passwords and API keys; each one audited."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from kefu.audit import actions as audit_actions
from kefu.audit import schemas as audit_events
from kefu.auth import service as auth_service
from kefu.auth.models import ApiKey, AuthSession, LoginFailure, User
from kefu.auth.policies import ALL_SCOPES, ROLE_SCOPES, ROLES, unknown_scopes
from kefu.auth.schemas import Principal
from kefu.core.clock import utcnow
from kefu.core.errors import (
    Conflict,
    Forbidden,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
    check_version,
)
from kefu.core.ids import new_id
from kefu.core.security import hash_password, needs_rehash, new_token, token_hash, verify_password
from kefu.core.settings import Settings
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork

MIN_PASSWORD = 10
API_KEY_PREFIX = auth_service.API_KEY_PREFIX


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed("password_too_short", details={"min_length": MIN_PASSWORD}, min_length=MIN_PASSWORD)


def _check_role(role: str, actor: Principal | None = None) -> None:
    """A known role, and one that grants nothing the caller lacks (a narrow key cannot mint an admin)."""
    if role not in ROLES:
        raise ValidationFailed("validation_error", details={"field": "role", "allowed": list(ROLES)})
    if actor is not None:
        beyond = sorted(ROLE_SCOPES[role] - actor.granted)
        if beyond:
            raise Forbidden("insufficient_scope", details={"scopes": beyond}, scope=", ".join(beyond))


async def do_create_user(
    uow: UnitOfWork,
    *,
    tenant_id: str,
    email: str,
    display_name: str,
    role: str,
    password: str,
    locale: str = "zh",
    actor: Principal | None = None,
    ip: str | None = None,
) -> User:
    """Create an active user with an argon2id password hash; ``actor`` None means the system (CLI, seeding)."""
    _check_password_rules(password)
    _check_role(role, actor)
    email = normalise_email(email)
    # Hashed (tens of ms of CPU) before the email check: where that is the unit of work's first statement
    # (the users route), no transaction, so on SQLite no write lock (BEGIN IMMEDIATE), is held meanwhile.
    password_hash = hash_password(password)
    # Emails are unique across tenants (login needs nothing else), so this check is global.
    if (await uow.session.scalars(select(User.id).where(User.email == email))).first() is not None:
        raise Conflict("email_taken")
    now = utcnow()
    user = User(id=new_id("usr"), tenant_id=tenant_id, email=email, display_name=display_name, role=role,
                locale=locale, password_hash=password_hash, is_active=True, version=1,
                created_at=now, updated_at=now)
    uow.session.add(user)
    try:
        await uow.session.flush()
    except IntegrityError:  # a concurrent create of the same email won
        raise Conflict("email_taken") from None
    await audit_actions.do_record(uow, tenant_id=tenant_id, actor=actor, action=audit_events.USER_CREATED,
                                  target_type="user", target_id=user.id, details={"role": role}, ip=ip)
    return user


async def _enforce_login_rate(uow: UnitOfWork, *, settings: Settings, email: str, ip: str) -> None:
    """Refuse once an email or a client address has too many recent failures (counted in the database, so
    every node enforces the same limit)."""
    window_start = utcnow() - timedelta(seconds=settings.login_window_seconds)
    by_email = await uow.session.scalar(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.email == email, LoginFailure.at >= window_start))
    by_ip = await uow.session.scalar(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.ip == ip, LoginFailure.at >= window_start))
    if (by_email or 0) >= settings.login_max_failures or (by_ip or 0) >= settings.login_max_failures * 4:
        raise RateLimited("login_rate_limited", retry_after=settings.login_window_seconds)


async def _count_failure(uow: UnitOfWork, *, email: str, ip: str) -> None:
    uow.session.add(LoginFailure(email=email, ip=ip[:64], at=utcnow()))
    await uow.session.flush()


async def do_login(
    uow: UnitOfWork, *, settings: Settings, email: str, password: str, ip: str
) -> tuple[User, str, AuthSession]:
    """Check credentials and open a session; returns (user, bearer token, session).

    A failure raises ``Unauthenticated`` after writing the failure (and, for a known email, an audit entry)
    to the unit of work: the caller commits it even though the request fails. Attempts refused by the rate
    limit are not audited, so hammering cannot flood the audit log.
    """
    email = normalise_email(email)
    await _enforce_login_rate(uow, settings=settings, email=email, ip=ip)
    user = await auth_service.get_user_by_email(session=uow.session, email=email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        await _count_failure(uow, email=email, ip=ip)
        if user is not None:
            await audit_actions.do_record(uow, tenant_id=user.tenant_id, actor=None, action=audit_events.LOGIN_FAILED,
                                          target_type="user", target_id=user.id,
                                          details={"reason": "invalid_credentials"}, ip=ip)
        raise Unauthenticated("invalid_credentials")
    if not user.is_active:
        await audit_actions.do_record(uow, tenant_id=user.tenant_id, actor=None, action=audit_events.LOGIN_FAILED,
                                      target_type="user", target_id=user.id, details={"reason": "account_disabled"},
                                      ip=ip)
        raise Unauthenticated("account_disabled")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, auth_session = await do_open_session(uow, user=user, settings=settings)
    await audit_actions.do_record(uow, tenant_id=user.tenant_id, actor=auth_service.principal_of(user),
                                  action=audit_events.LOGIN_SUCCEEDED, target_type="user", target_id=user.id,
                                  details={"session_id": auth_session.id}, ip=ip)
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


async def do_logout(uow: UnitOfWork, *, token: str, actor: Principal | None = None, ip: str | None = None) -> None:
    """Revoke the session of ``token``; audited when the caller is known."""
    revoked = await uow.session.execute(
        update(AuthSession).where(AuthSession.token_hash == token_hash(token), AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow()))
    if actor is not None and revoked.rowcount:
        _emit_revoked(uow, tenant_id=actor.tenant_id, principal_id=actor.id, token_hash=token_hash(token))
        await audit_actions.do_record(uow, tenant_id=actor.tenant_id, actor=actor, action=audit_events.LOGOUT,
                                      target_type="user", target_id=actor.id, ip=ip)


def _emit_revoked(uow: UnitOfWork, *, tenant_id: str, principal_id: str, token_hash: str | None = None,
                  keep_token_hash: str | None = None) -> None:
    """Tell every node to close sockets opened with credentials that no longer work."""
    uow.emit(ev.CREDENTIALS_REVOKED, tenant_id=tenant_id,
             data={"principal_id": principal_id, "token_hash": token_hash, "keep_token_hash": keep_token_hash})


async def _revoke_sessions(uow: UnitOfWork, *, tenant_id: str, user_id: str,
                           keep_token_hash: str | None = None) -> int:
    query = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if keep_token_hash is not None:
        query = query.where(AuthSession.token_hash != keep_token_hash)
    result = await uow.session.execute(query.values(revoked_at=utcnow()))
    if result.rowcount:
        _emit_revoked(uow, tenant_id=tenant_id, principal_id=user_id, keep_token_hash=keep_token_hash)
    return result.rowcount or 0


async def _lock_active_admins(uow: UnitOfWork, *, tenant_id: str) -> list[str]:
    """Ids of the tenant's active admins, locked on PostgreSQL (in id order) until the transaction ends.

    Taken before the target row's lock, so two admins demoting each other at once queue here instead of
    both succeeding (or deadlocking); SQLite serialises writers anyway.
    """
    return list(
        (
            await uow.session.scalars(
                select(User.id)
                .where(User.tenant_id == tenant_id, User.role == "admin", User.is_active.is_(True))
                .order_by(User.id)
                .with_for_update()
            )
        ).all()
    )


async def do_update_user(
    uow: UnitOfWork,
    *,
    actor: Principal,
    user: User,
    display_name: str | None = None,
    locale: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    expected_version: int | None = None,
    ip: str | None = None,
) -> User:
    """Change a user's profile, role or active flag (an admin's action); ``None`` leaves a field as it is.

    ``expected_version`` (from If-Match) makes a stale update fail with ``version_conflict``. Deactivation
    signs the user out everywhere.
    """
    if role is not None:
        _check_role(role, actor)
    demotes = (role is not None and role != "admin") or is_active is False
    admins = await _lock_active_admins(uow, tenant_id=user.tenant_id) if demotes else []
    # Reload under a row lock: the version compared and bumped below must be the committed one.
    await uow.session.refresh(user, with_for_update=True)
    check_version(user.version, expected_version)
    # If the user became an admin after ``admins`` was read, other admins exist, so the check still holds.
    if demotes and user.id in admins and len(admins) <= 1:
        raise Conflict("last_admin")

    changed: list[str] = []
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        changed.append("display_name")
    if locale is not None and locale != user.locale:
        user.locale = locale
        changed.append("locale")
    old_role = user.role
    if role is not None and role != user.role:
        user.role = role
    activity_changed = is_active is not None and is_active != user.is_active
    if activity_changed:
        user.is_active = bool(is_active)
    if not changed and old_role == user.role and not activity_changed:
        return user

    user.version += 1
    user.updated_at = utcnow()
    await uow.session.flush()
    if activity_changed and not user.is_active:
        await _revoke_sessions(uow, tenant_id=user.tenant_id, user_id=user.id)
    record = audit_actions.do_record
    tenant_id = user.tenant_id
    if changed:
        await record(uow, tenant_id=tenant_id, actor=actor, action=audit_events.USER_UPDATED, target_type="user",
                     target_id=user.id, details={"fields": changed}, ip=ip)
    if old_role != user.role:
        await record(uow, tenant_id=tenant_id, actor=actor, action=audit_events.USER_ROLE_CHANGED, target_type="user",
                     target_id=user.id, details={"from": old_role, "to": user.role}, ip=ip)
    if activity_changed:
        action = audit_events.USER_REACTIVATED if user.is_active else audit_events.USER_DEACTIVATED
        await record(uow, tenant_id=tenant_id, actor=actor, action=action, target_type="user", target_id=user.id, ip=ip)
    return user


async def do_deactivate_user(uow: UnitOfWork, *, actor: Principal, user: User, ip: str | None = None) -> User:
    """Deactivate a user and revoke all their sessions; a no-op for an inactive user."""
    return await do_update_user(uow, actor=actor, user=user, is_active=False, ip=ip)


async def do_update_own_profile(
    uow: UnitOfWork,
    *,
    settings: Settings,
    actor: Principal,
    user: User,
    display_name: str | None = None,
    locale: str | None = None,
    current_password: str | None = None,
    new_password: str | None = None,
    current_token: str | None = None,
    ip: str = "unknown",
) -> User:
    """Let a signed-in user change their name, language or password.

    A wrong current password counts as a failed login, so a stolen session cannot be used to guess the
    password at leisure; a changed password signs out every session except the current one.
    """
    # Same row lock as an admin's update, so concurrent changes never reuse a version number.
    await uow.session.refresh(user, with_for_update=True)
    password_changed = False
    if new_password is not None:
        if current_password is None:
            raise ValidationFailed("current_password_required", details={"field": "current_password"})
        _check_password_rules(new_password)
        await _enforce_login_rate(uow, settings=settings, email=user.email, ip=ip)
        if not verify_password(user.password_hash, current_password):
            await _count_failure(uow, email=user.email, ip=ip)
            raise ValidationFailed("current_password_incorrect", details={"field": "current_password"})
        user.password_hash = hash_password(new_password)
        password_changed = True

    changed: list[str] = []
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        changed.append("display_name")
    if locale is not None and locale != user.locale:
        user.locale = locale
        changed.append("locale")
    if not changed and not password_changed:
        return user
    user.version += 1
    user.updated_at = utcnow()
    await uow.session.flush()
    if password_changed:
        await _revoke_sessions(uow, tenant_id=user.tenant_id, user_id=user.id,
                               keep_token_hash=token_hash(current_token) if current_token else None)
        await audit_actions.do_record(uow, tenant_id=user.tenant_id, actor=actor, action=audit_events.PASSWORD_CHANGED,
                                      target_type="user", target_id=user.id, ip=ip)
    if changed:
        await audit_actions.do_record(uow, tenant_id=user.tenant_id, actor=actor, action=audit_events.USER_UPDATED,
                                      target_type="user", target_id=user.id, details={"fields": changed}, ip=ip)
    return user


async def do_create_api_key(
    uow: UnitOfWork,
    *,
    actor: Principal,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    ip: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key in the actor's tenant; returns (key, full token). Only the secret's hash is stored.

    A caller cannot hand out a scope it does not hold itself, so a key allowed to make keys cannot mint a
    stronger one.
    """
    requested = sorted(set(scopes))
    unknown = unknown_scopes(requested)
    if unknown:
        raise ValidationFailed("unknown_scope", details={"unknown": unknown, "allowed": sorted(ALL_SCOPES)},
                               scope=", ".join(unknown))
    beyond = [s for s in requested if not actor.can(s)]
    if beyond:
        raise Forbidden("insufficient_scope", details={"scopes": beyond}, scope=", ".join(beyond))
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires_at_in_past", details={"field": "expires_at"})
    # Hex, so the secret never contains the "_" that separates the token's parts.
    secret = secrets.token_hex(32)
    key = ApiKey(id=new_id("key"), tenant_id=actor.tenant_id, name=name, secret_hash=token_hash(secret),
                 scopes=requested, created_by=actor.id, created_at=now, expires_at=expires_at)
    uow.session.add(key)
    await uow.session.flush()
    await audit_actions.do_record(uow, tenant_id=actor.tenant_id, actor=actor, action=audit_events.API_KEY_CREATED,
                                  target_type="api_key", target_id=key.id,
                                  details={"name": name, "scopes": requested}, ip=ip)
    return key, f"{API_KEY_PREFIX}{key.id}_{secret}"


async def do_revoke_api_key(uow: UnitOfWork, *, actor: Principal, key: ApiKey, ip: str | None = None) -> ApiKey:
    """Revoke a key at once; revoking it again changes nothing."""
    if key.revoked_at is not None:
        return key
    key.revoked_at = utcnow()
    await uow.session.flush()
    _emit_revoked(uow, tenant_id=key.tenant_id, principal_id=key.id)
    await audit_actions.do_record(uow, tenant_id=key.tenant_id, actor=actor, action=audit_events.API_KEY_REVOKED,
                                  target_type="api_key", target_id=key.id, details={"name": key.name}, ip=ip)
    return key
