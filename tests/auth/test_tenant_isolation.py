"""A user of tenant B gets, for tenant A's users and keys, exactly the answer a missing id gets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kefu.core.ids import new_id
from tests.auth.helpers import bearer, create_key
from tests.factories import TenantFixture

# (method, path template, body, which of tenant A's objects the id names)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/users/{id}", None, "user"),
    ("PATCH", "/api/v1/users/{id}", {"display_name": "hijacked", "role": "agent"}, "user"),
    ("DELETE", "/api/v1/users/{id}", None, "user"),
    ("GET", "/api/v1/api-keys/{id}", None, "api_key"),
    ("DELETE", "/api/v1/api-keys/{id}", None, "api_key"),
]


@pytest.mark.parametrize(("method", "template", "body", "kind"), ENDPOINTS,
                         ids=[f"{m} {t}" for m, t, _, _ in ENDPOINTS])
async def test_other_tenants_objects_look_missing(http: httpx.AsyncClient, tenant: TenantFixture,
                                                  other_tenant: TenantFixture, method: str, template: str,
                                                  body: dict[str, Any] | None, kind: str) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    target = {"user": tenant.admin.id, "api_key": key["id"]}[kind]
    missing = new_id("usr" if kind == "user" else "key")

    foreign = await http.request(method, template.format(id=target), json=body, headers=other_tenant.admin.headers)
    absent = await http.request(method, template.format(id=missing), json=body, headers=other_tenant.admin.headers)
    assert foreign.status_code == absent.status_code == 404
    f_err, a_err = foreign.json()["error"], absent.json()["error"]
    assert (f_err["code"], f_err["message"], f_err["details"]) == (a_err["code"], a_err["message"], a_err["details"])

    # Tenant A's objects are untouched.
    user = (await http.get(f"/api/v1/users/{tenant.admin.id}", headers=tenant.admin.headers)).json()
    assert user["display_name"] != "hijacked" and user["is_active"] and user["role"] == "admin"
    assert (await http.get("/api/v1/users", headers=bearer(key["token"]))).status_code == 200


async def test_lists_only_show_the_callers_tenant(http: httpx.AsyncClient, tenant: TenantFixture,
                                                  other_tenant: TenantFixture) -> None:
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    users = (await http.get("/api/v1/users", headers=other_tenant.admin.headers)).json()["data"]
    assert {u["id"] for u in users} == {other_tenant.admin.id, other_tenant.supervisor.id, other_tenant.agent.id}
    keys = (await http.get("/api/v1/api-keys", headers=other_tenant.admin.headers)).json()["data"]
    assert key["id"] not in [k["id"] for k in keys]
    entries = (await http.get("/api/v1/audit-entries", params={"limit": 200},
                              headers=other_tenant.admin.headers)).json()["data"]
    assert entries and all(e["target_id"] != tenant.admin.id and e["actor_id"] != tenant.admin.id for e in entries)
    # Filtering by another tenant's ids finds nothing rather than their entries.
    filtered = await http.get("/api/v1/audit-entries", params={"actor_id": tenant.admin.id},
                              headers=other_tenant.admin.headers)
    assert filtered.status_code == 200 and filtered.json()["data"] == []
    # A key of tenant A lists tenant A's users only.
    listed = (await http.get("/api/v1/users", headers=bearer(key["token"]))).json()["data"]
    assert {u["id"] for u in listed} == {tenant.admin.id, tenant.supervisor.id, tenant.agent.id}
