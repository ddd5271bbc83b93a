"""Scoped API keys: shown once, stored hashed, limited to their scopes, revocable, expiring."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from kefu.core.clock import isoformat, utcnow
from tests.auth.helpers import audit_entries, bearer, create_key, unique_email
from tests.factories import TenantFixture

NEW_USER = {"display_name": "x", "role": "agent", "password": "long-enough-pass"}


async def test_the_full_key_is_shown_once_and_never_again(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read", "contacts:read", "users:read"])
    assert key["token"].startswith(f"kefu_{key['id']}_")
    assert key["scopes"] == ["contacts:read", "users:read"] and key["created_by"] == tenant.admin.id
    secret = key["token"].rsplit("_", 1)[1]
    one = await http.get(f"/api/v1/api-keys/{key['id']}", headers=tenant.admin.headers)
    listed = await http.get("/api/v1/api-keys", headers=tenant.admin.headers)
    assert one.status_code == listed.status_code == 200
    assert "token" not in one.json() and secret not in one.text and secret not in listed.text
    assert key["id"] in [k["id"] for k in listed.json()["data"]]
    [entry] = await audit_entries(http, tenant.admin.headers, action="api_key.created", target_id=key["id"])
    assert entry["actor_id"] == tenant.admin.id
    assert entry["details"] == {"name": "integration", "scopes": ["contacts:read", "users:read"]}
    assert secret not in str(entry)


async def test_a_key_acts_within_its_scopes_only(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    listed = await http.get("/api/v1/users", headers=bearer(key["token"]))
    assert listed.status_code == 200 and len(listed.json()["data"]) == 3
    denied = await http.post("/api/v1/users", headers=bearer(key["token"]),
                             json={**NEW_USER, "email": unique_email()})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_scope"
    assert "users:write" in denied.json()["error"]["message"]
    used = (await http.get(f"/api/v1/api-keys/{key['id']}", headers=tenant.admin.headers)).json()
    assert used["last_used_at"] is not None


async def test_a_key_cannot_mint_a_stronger_key(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    maker = await create_key(http, tenant.admin.headers, ["api_keys:write", "users:read"])
    stronger = await http.post("/api/v1/api-keys", headers=bearer(maker["token"]),
                               json={"name": "escalate", "scopes": ["users:read", "users:write"]})
    assert stronger.status_code == 403 and stronger.json()["error"]["code"] == "insufficient_scope"
    assert stronger.json()["error"]["details"] == {"scopes": ["users:write"]}
    weaker = await http.post("/api/v1/api-keys", headers=bearer(maker["token"]),
                             json={"name": "narrow", "scopes": ["users:read"]})
    assert weaker.status_code == 201 and weaker.json()["created_by"] == maker["id"]


async def test_key_creation_refusals(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    unknown = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                              json={"name": "x", "scopes": ["users:read", "orders:delete"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_scope"
    assert unknown.json()["error"]["details"]["unknown"] == ["orders:delete"]
    past = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                           json={"name": "x", "scopes": ["users:read"], "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["error"]["code"] == "expires_at_in_past"
    naive = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                            json={"name": "x", "scopes": ["users:read"], "expires_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["code"] == "validation_error"
    for caller in (tenant.supervisor, tenant.agent):
        r = await http.post("/api/v1/api-keys", headers=caller.headers, json={"name": "x", "scopes": ["users:read"]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await http.get("/api/v1/api-keys", headers=caller.headers)).status_code == 403
    listed = (await http.get("/api/v1/api-keys", headers=tenant.admin.headers)).json()
    assert listed["data"] == []  # nothing was created by the refused requests


async def test_a_revoked_key_is_refused_at_once(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    assert (await http.get("/api/v1/users", headers=bearer(key["token"]))).status_code == 200
    assert (await http.delete(f"/api/v1/api-keys/{key['id']}", headers=tenant.admin.headers)).status_code == 204
    refused = await http.get("/api/v1/users", headers=bearer(key["token"]))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    assert (await http.delete(f"/api/v1/api-keys/{key['id']}", headers=tenant.admin.headers)).status_code == 204
    shown = (await http.get(f"/api/v1/api-keys/{key['id']}", headers=tenant.admin.headers)).json()
    assert shown["revoked_at"] is not None
    revoked = (await http.get("/api/v1/api-keys", params={"revoked": "true"}, headers=tenant.admin.headers)).json()
    live = (await http.get("/api/v1/api-keys", params={"revoked": "false"}, headers=tenant.admin.headers)).json()
    assert [k["id"] for k in revoked["data"]] == [key["id"]] and live["data"] == []
    entries = await audit_entries(http, tenant.admin.headers, action="api_key.revoked", target_id=key["id"])
    assert len(entries) == 1  # the repeated revoke changed nothing


async def test_a_forged_secret_is_refused(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    forged = key["token"][:-4] + ("0000" if not key["token"].endswith("0000") else "1111")
    r = await http.get("/api/v1/users", headers=bearer(forged))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


async def test_an_expired_key_is_refused(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    expires = utcnow() + timedelta(seconds=3)
    key = await create_key(http, tenant.admin.headers, ["users:read"], expires_at=isoformat(expires))
    assert (await http.get("/api/v1/users", headers=bearer(key["token"]))).status_code == 200
    await asyncio.sleep((expires - utcnow()).total_seconds() + 0.2)
    r = await http.get("/api/v1/users", headers=bearer(key["token"]))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


async def test_a_narrow_key_cannot_create_or_promote_an_admin(http, tenant) -> None:  # type: ignore[no-untyped-def]
    key = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                          json={"name": "hr sync", "scopes": ["users:read", "users:write"]})
    headers = {"Authorization": f"Bearer {key.json()['token']}"}
    made = await http.post("/api/v1/users", headers=headers, json={
        "email": f"boss-{key.json()['id'][-6:]}@example.test", "display_name": "Boss", "role": "admin",
        "password": "long-enough-password"})
    assert made.status_code == 403 and made.json()["error"]["code"] == "insufficient_scope"
    promote = await http.patch(f"/api/v1/users/{tenant.agent.id}", headers=headers, json={"role": "admin"})
    assert promote.status_code == 403
    # Even an agent grants conversation and contact scopes this key does not hold.
    agent = await http.post("/api/v1/users", headers=headers, json={
        "email": f"agent-{key.json()['id'][-6:]}@example.test", "display_name": "New agent", "role": "agent",
        "password": "long-enough-password"})
    assert agent.status_code == 403
    user = (await http.get(f"/api/v1/users/{tenant.agent.id}", headers=tenant.admin.headers)).json()
    assert user["role"] == "agent"
