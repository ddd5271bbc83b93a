"""Lists and filters show only the caller's tenant (ids in paths are walked by tests/api/test_tenant_isolation.py)."""

from __future__ import annotations

import httpx

from tests.auth.helpers import bearer, create_key
from tests.factories import TenantFixture


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
