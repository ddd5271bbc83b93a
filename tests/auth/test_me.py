"""The signed-in user's own profile: reading it, changing name, language and password."""

from __future__ import annotations

import httpx

from tests.auth.helpers import audit_entries, bearer, create_key, login
from tests.factories import TenantFixture


async def test_me_shows_the_user_and_the_scopes_of_their_role(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await http.get("/api/v1/auth/me", headers=tenant.agent.headers)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["id"] == tenant.agent.id and me["tenant_id"] == tenant.id and me["role"] == "agent"
    assert "conversations:write" in me["scopes"] and "users:write" not in me["scopes"]
    assert "password" not in r.text and "argon2" not in r.text


async def test_me_needs_a_user_token(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    for method in ("GET", "PATCH"):
        r = await http.request(method, "/api/v1/auth/me", headers=bearer(key["token"]),
                               json={"locale": "en"} if method == "PATCH" else None)
        assert r.status_code == 403 and r.json()["error"]["code"] == "user_token_required"


async def test_changing_language_switches_the_language_of_messages(http: httpx.AsyncClient,
                                                                   tenant: TenantFixture) -> None:
    r = await http.patch("/api/v1/auth/me", json={"locale": "zh", "display_name": "小美"}, headers=tenant.agent.headers)
    assert r.status_code == 200 and r.json()["locale"] == "zh" and r.json()["display_name"] == "小美"
    # Without Accept-Language, errors now follow the user's setting.
    missing = await http.get("/api/v1/users/usr_01jgx3v7k2m4n5p6q7r8s9t0vw", headers=tenant.agent.headers)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "用户不存在。"
    [entry] = await audit_entries(http, tenant.admin.headers, action="user.updated", target_id=tenant.agent.id)
    assert entry["actor_id"] == tenant.agent.id and entry["details"] == {"fields": ["display_name", "locale"]}


async def test_password_change_keeps_this_session_and_ends_the_others(own_http: httpx.AsyncClient,
                                                                      own_tenant: TenantFixture) -> None:
    agent = own_tenant.agent
    other = (await login(own_http, agent.email, agent.password)).json()["token"]
    r = await own_http.patch("/api/v1/auth/me", headers=agent.headers,
                             json={"current_password": agent.password, "new_password": "a-brand-new-passphrase"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert (await own_http.get("/api/v1/auth/me", headers=agent.headers)).status_code == 200
    ended = await own_http.get("/api/v1/auth/me", headers=bearer(other))
    assert ended.status_code == 401 and ended.json()["error"]["code"] == "invalid_token"
    assert (await login(own_http, agent.email, agent.password)).status_code == 401
    assert (await login(own_http, agent.email, "a-brand-new-passphrase")).status_code == 200
    [entry] = await audit_entries(own_http, own_tenant.admin.headers, action="user.password_changed",
                                  target_id=agent.id)
    assert entry["actor_id"] == agent.id and entry["details"] == {}


async def test_password_change_refusals(own_http: httpx.AsyncClient, own_tenant: TenantFixture) -> None:
    agent = own_tenant.agent
    cases = [
        ({"new_password": "a-brand-new-passphrase"}, "current_password_required"),
        ({"current_password": "not-my-password", "new_password": "a-brand-new-passphrase"},
         "current_password_incorrect"),
        ({"current_password": agent.password, "new_password": "short"}, "password_too_short"),
    ]
    for body, code in cases:
        r = await own_http.patch("/api/v1/auth/me", json=body, headers=agent.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
    # Nothing changed: the old password still works, and the version is untouched.
    assert (await login(own_http, agent.email, agent.password)).status_code == 200
    assert (await own_http.get("/api/v1/auth/me", headers=agent.headers)).json()["version"] == 1
    assert await audit_entries(own_http, own_tenant.admin.headers, action="user.password_changed") == []
