"""Managing users through the REST API: roles, versions, the last admin, deactivation, auditing."""

from __future__ import annotations

import httpx

from tests.auth.helpers import audit_entries, bearer, create_user, login, unique_email
from tests.factories import TenantFixture

USER_FIELDS = {"id", "email", "display_name", "role", "locale", "is_active", "version", "created_at", "updated_at"}


async def test_admin_creates_a_user_and_no_password_hash_is_ever_returned(http: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    email = unique_email("Agent")
    r = await http.post("/api/v1/users", headers=tenant.admin.headers, json={
        "email": email, "display_name": "小美", "role": "agent", "password": "a-long-initial-password",
        "locale": "en"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == USER_FIELDS
    assert created["email"] == email.lower() and created["role"] == "agent" and created["is_active"] is True
    assert created["id"].startswith("usr_") and created["version"] == 1 and created["created_at"].endswith("Z")
    for response in (r, await http.get(f"/api/v1/users/{created['id']}", headers=tenant.admin.headers),
                     await http.get("/api/v1/users", headers=tenant.admin.headers)):
        assert "argon2" not in response.text and "password" not in response.text
    [entry] = await audit_entries(http, tenant.admin.headers, action="user.created", target_id=created["id"])
    assert entry["actor_id"] == tenant.admin.id and entry["details"] == {"role": "agent"}


async def test_create_user_refusals(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    taken = await http.post("/api/v1/users", headers=tenant.admin.headers, json={
        "email": tenant.agent.email.upper(), "display_name": "x", "role": "agent", "password": "long-enough-pass"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "email_taken"
    short = await http.post("/api/v1/users", headers=tenant.admin.headers, json={
        "email": unique_email(), "display_name": "x", "role": "agent", "password": "short"})
    assert short.status_code == 422 and short.json()["error"]["code"] == "password_too_short"
    assert short.json()["error"]["details"] == {"min_length": 10}
    role = await http.post("/api/v1/users", headers=tenant.admin.headers, json={
        "email": unique_email(), "display_name": "x", "role": "owner", "password": "long-enough-pass"})
    assert role.status_code == 422 and role.json()["error"]["code"] == "validation_error"
    for caller in (tenant.supervisor, tenant.agent):
        denied = await http.post("/api/v1/users", headers=caller.headers, json={
            "email": unique_email(), "display_name": "x", "role": "agent", "password": "long-enough-pass"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    anonymous = await http.get("/api/v1/users")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"


async def test_list_users_pages_and_filters(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    extra = [await create_user(http, tenant.admin.headers, role="agent") for _ in range(3)]
    seen: list[str] = []
    params: dict[str, object] = {"limit": 2}
    while True:
        r = await http.get("/api/v1/users", params=params, headers=tenant.agent.headers)  # agents may list
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["data"]) <= 2
        seen += [u["id"] for u in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    expected = sorted([tenant.admin.id, tenant.supervisor.id, tenant.agent.id] + [u["id"] for u in extra])
    assert seen == expected  # every user once, oldest first

    agents = (await http.get("/api/v1/users", params={"role": "agent"}, headers=tenant.admin.headers)).json()["data"]
    assert {u["id"] for u in agents} == {tenant.agent.id} | {u["id"] for u in extra}
    await http.delete(f"/api/v1/users/{extra[0]['id']}", headers=tenant.admin.headers)
    inactive = (await http.get("/api/v1/users", params={"is_active": "false"}, headers=tenant.admin.headers)).json()
    assert [u["id"] for u in inactive["data"]] == [extra[0]["id"]]
    bad = await http.get("/api/v1/users", params={"cursor": "!!not-a-cursor"}, headers=tenant.admin.headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_update_with_if_match_refuses_a_stale_version(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    url = f"/api/v1/users/{tenant.agent.id}"
    got = await http.get(url, headers=tenant.admin.headers)
    assert got.headers["ETag"] == '"1"'
    first = await http.patch(url, json={"display_name": "小美 (夜班)"},
                             headers={**tenant.admin.headers, "If-Match": '"1"'})
    assert first.status_code == 200 and first.json()["version"] == 2 and first.headers["ETag"] == '"2"'
    stale = await http.patch(url, json={"display_name": "Someone else"}, headers={**tenant.admin.headers, "If-Match": "1"})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "version_conflict"
    assert stale.json()["error"]["details"] == {"current_version": 2}
    assert (await http.get(url, headers=tenant.admin.headers)).json()["display_name"] == "小美 (夜班)"
    # Without If-Match the update applies to the current version.
    blind = await http.patch(url, json={"locale": "zh"}, headers=tenant.admin.headers)
    assert blind.status_code == 200 and blind.json()["version"] == 3 and blind.json()["locale"] == "zh"
    garbage = await http.patch(url, json={"locale": "en"}, headers={**tenant.admin.headers, "If-Match": "abc"})
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_if_match"
    # A change to nothing changes nothing, not even the version.
    same = await http.patch(url, json={"locale": "zh"}, headers=tenant.admin.headers)
    assert same.status_code == 200 and same.json()["version"] == 3


async def test_role_change_is_audited_and_takes_effect(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    assert (await http.get("/api/v1/audit-entries", headers=tenant.agent.headers)).status_code == 403
    r = await http.patch(f"/api/v1/users/{tenant.agent.id}", json={"role": "supervisor"},
                         headers=tenant.admin.headers)
    assert r.status_code == 200 and r.json()["role"] == "supervisor"
    # The same session now carries the new role's permissions.
    assert (await http.get("/api/v1/audit-entries", headers=tenant.agent.headers)).status_code == 200
    [entry] = await audit_entries(http, tenant.admin.headers, action="user.role_changed", target_id=tenant.agent.id)
    assert entry["actor_id"] == tenant.admin.id and entry["details"] == {"from": "agent", "to": "supervisor"}
    denied = await http.patch(f"/api/v1/users/{tenant.agent.id}", json={"role": "admin"}, headers=tenant.supervisor.headers)
    assert denied.status_code == 403


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(http: httpx.AsyncClient,
                                                                      tenant: TenantFixture) -> None:
    url = f"/api/v1/users/{tenant.admin.id}"
    for attempt in (http.patch(url, json={"role": "agent"}, headers=tenant.admin.headers),
                    http.patch(url, json={"is_active": False}, headers=tenant.admin.headers),
                    http.delete(url, headers=tenant.admin.headers)):
        r = await attempt
        assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
    me = (await http.get(url, headers=tenant.admin.headers)).json()
    assert me["role"] == "admin" and me["is_active"] and me["version"] == 1
    # With a second admin, the first may step down.
    second = await create_user(http, tenant.admin.headers, role="admin")
    assert (await http.patch(url, json={"role": "supervisor"}, headers=tenant.admin.headers)).status_code == 200
    # ... and now the second is the last one.
    last = await http.delete(f"/api/v1/users/{second['id']}", headers=tenant.admin.headers)
    assert last.status_code == 403  # the former admin lost users:write with the role
    token = (await login(http, second["email"], second["password"])).json()["token"]
    refused = await http.delete(f"/api/v1/users/{second['id']}", headers=bearer(token))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "last_admin"


async def test_deactivation_signs_the_user_out_and_can_be_undone(http: httpx.AsyncClient,
                                                                 tenant: TenantFixture) -> None:
    url = f"/api/v1/users/{tenant.agent.id}"
    assert (await http.get("/api/v1/auth/me", headers=tenant.agent.headers)).status_code == 200
    assert (await http.delete(url, headers=tenant.admin.headers)).status_code == 204
    refused = await http.get("/api/v1/auth/me", headers=tenant.agent.headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    user = (await http.get(url, headers=tenant.admin.headers)).json()
    assert user["is_active"] is False and user["version"] == 2
    assert (await http.delete(url, headers=tenant.admin.headers)).status_code == 204  # repeating is harmless
    [entry] = await audit_entries(http, tenant.admin.headers, action="user.deactivated", target_id=tenant.agent.id)
    assert entry["actor_id"] == tenant.admin.id

    back = await http.patch(url, json={"is_active": True}, headers=tenant.admin.headers)
    assert back.status_code == 200 and back.json()["is_active"] is True
    # Old sessions stay revoked; a fresh login works again.
    assert (await http.get("/api/v1/auth/me", headers=tenant.agent.headers)).status_code == 401
    assert (await login(http, tenant.agent.email, tenant.agent.password)).status_code == 200
    assert len(await audit_entries(http, tenant.admin.headers, action="user.reactivated",
                                   target_id=tenant.agent.id)) == 1


async def test_profile_update_is_audited_with_field_names_only(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await http.patch(f"/api/v1/users/{tenant.agent.id}", json={"display_name": "新名字", "locale": "zh"},
                         headers=tenant.admin.headers)
    assert r.status_code == 200
    [entry] = await audit_entries(http, tenant.admin.headers, action="user.updated", target_id=tenant.agent.id)
    assert entry["details"] == {"fields": ["display_name", "locale"]}
