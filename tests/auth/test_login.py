"""Logging in and out: audit entries, rate limiting, expired and revoked sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from kefu.audit.models import AuditEntry
from kefu.auth import actions as auth_actions
from kefu.auth import service as auth_service
from kefu.core.clock import utcnow
from kefu.core.errors import Unauthenticated
from kefu.runtime import Runtime
from tests.auth.conftest import LOGIN_MAX_FAILURES
from tests.auth.helpers import audit_entries, bearer, create_user, login, unique_email
from tests.conftest import LiveServer, make_settings
from tests.factories import TenantFixture


async def test_successful_login_is_audited_with_the_client_address(own_http: httpx.AsyncClient,
                                                                   own_tenant: TenantFixture) -> None:
    r = await login(own_http, own_tenant.agent.email, own_tenant.agent.password)
    assert r.status_code == 200, r.text
    [entry] = await audit_entries(own_http, own_tenant.admin.headers, action="auth.login",
                                  target_id=own_tenant.agent.id)
    assert entry["actor_type"] == "user" and entry["actor_id"] == own_tenant.agent.id
    assert entry["ip"] == "127.0.0.1"


async def test_failed_login_is_audited_although_the_request_fails(own_http: httpx.AsyncClient,
                                                                  own_tenant: TenantFixture) -> None:
    r = await login(own_http, own_tenant.agent.email.upper(), "wrong-password")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    [entry] = await audit_entries(own_http, own_tenant.admin.headers, action="auth.login_failed",
                                  target_id=own_tenant.agent.id)
    assert entry["details"] == {"reason": "invalid_credentials"} and entry["ip"] == "127.0.0.1"
    assert entry["actor_type"] == "system" and entry["actor_id"] is None


async def test_failed_login_of_an_unknown_email_writes_no_audit_entry(own_http: httpx.AsyncClient,
                                                                      own_runtime: Runtime) -> None:
    async def failed_entries() -> int:
        async with own_runtime.sessionmaker() as session:
            return await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "auth.login_failed")) or 0

    before = await failed_entries()
    r = await login(own_http, unique_email("nobody"), "whatever-password")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    assert await failed_entries() == before


async def test_deactivated_user_cannot_log_in_and_the_attempt_is_audited(own_http: httpx.AsyncClient,
                                                                         own_tenant: TenantFixture) -> None:
    assert (await own_http.delete(f"/api/v1/users/{own_tenant.agent.id}",
                                  headers=own_tenant.admin.headers)).status_code == 204
    r = await login(own_http, own_tenant.agent.email, own_tenant.agent.password)
    assert r.status_code == 401 and r.json()["error"]["code"] == "account_disabled"
    [entry] = await audit_entries(own_http, own_tenant.admin.headers, action="auth.login_failed",
                                  target_id=own_tenant.agent.id)
    assert entry["details"] == {"reason": "account_disabled"}


async def test_login_is_rate_limited_per_email(own_http: httpx.AsyncClient, own_tenant: TenantFixture) -> None:
    for _ in range(LOGIN_MAX_FAILURES):
        r = await login(own_http, own_tenant.supervisor.email, "wrong-password")
        assert r.status_code == 401
    # Now even the right password is refused, with the time to wait.
    blocked = await login(own_http, own_tenant.supervisor.email, own_tenant.supervisor.password)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "login_rate_limited"
    assert blocked.headers["Retry-After"] == "900"
    assert "900" in blocked.json()["error"]["message"]
    zh = await own_http.post("/api/v1/auth/login", headers={"Accept-Language": "zh-CN"},
                             json={"email": own_tenant.supervisor.email, "password": "x"})
    assert zh.status_code == 429 and "900 秒" in zh.json()["error"]["message"]
    # Another user, from the same address, is not blocked.
    other = await login(own_http, own_tenant.agent.email, own_tenant.agent.password)
    assert other.status_code == 200, other.text


async def test_logout_revokes_the_token_and_is_audited(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await login(http, tenant.agent.email, tenant.agent.password)
    token = r.json()["token"]
    assert (await http.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
    assert (await http.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 204
    refused = await http.get("/api/v1/auth/me", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    # The fixture's own session is still valid: logout ends one session only.
    assert (await http.get("/api/v1/auth/me", headers=tenant.agent.headers)).status_code == 200
    [entry] = await audit_entries(http, tenant.admin.headers, action="auth.logout", actor_id=tenant.agent.id)
    assert entry["target_id"] == tenant.agent.id


async def test_session_lifetime_follows_the_setting(sqlite_url: str, tenant: TenantFixture) -> None:
    live = LiveServer(make_settings(sqlite_url, session_ttl_seconds=60)).start()
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=15) as client:
            r = await login(client, tenant.agent.email, tenant.agent.password)
            assert r.status_code == 200
            expires = datetime.fromisoformat(r.json()["expires_at"].replace("Z", "+00:00"))
            assert timedelta(seconds=50) < expires - utcnow() <= timedelta(seconds=60)
            token = r.json()["token"]
            assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
            await client.post("/api/v1/auth/logout", headers=bearer(token))
            refused = await client.get("/api/v1/auth/me", headers=bearer(token))
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    finally:
        live.stop()


async def test_an_expired_session_token_is_refused(runtime: Runtime, tenant: TenantFixture) -> None:
    # Settings validation forbids such a lifetime; copying around it gives a session born expired.
    expired_settings = runtime.settings.model_copy(update={"session_ttl_seconds": -1})
    uow = runtime.unit_of_work()
    try:
        user = await auth_service.access_user(session=uow.session, tenant_id=tenant.id, user_id=tenant.agent.id)
        token, auth_session = await auth_actions.do_open_session(uow, user=user, settings=expired_settings)
        await uow.commit()
    finally:
        await uow.session.close()
    assert auth_session.expires_at < utcnow()
    async with runtime.sessionmaker() as session:
        with pytest.raises(Unauthenticated) as caught:
            await auth_service.authenticate(session=session, token=token)
        assert caught.value.code == "invalid_token"
        # The same user's live session still authenticates.
        principal = await auth_service.authenticate(session=session, token=tenant.agent.token)
        assert principal.id == tenant.agent.id and principal.role == "agent"


async def test_user_created_through_the_api_can_log_in(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    user = await create_user(http, tenant.admin.headers, role="supervisor")
    r = await login(http, user["email"], user["password"])
    assert r.status_code == 200 and r.json()["role"] == "supervisor" and r.json()["tenant_id"] == tenant.id
