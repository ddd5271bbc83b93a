"""Reading the audit log over the API: who may, paging, filters."""

from __future__ import annotations

import httpx

from tests.auth.helpers import audit_entries, bearer, create_key, create_user
from tests.factories import TenantFixture


async def test_admins_and_supervisors_read_the_log_agents_do_not(http: httpx.AsyncClient,
                                                                 tenant: TenantFixture) -> None:
    assert (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers)).status_code == 200
    assert (await http.get("/api/v1/audit-entries", headers=tenant.supervisor.headers)).status_code == 200
    denied = await http.get("/api/v1/audit-entries", headers=tenant.agent.headers)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    key = await create_key(http, tenant.admin.headers, ["users:read"])
    no_scope = await http.get("/api/v1/audit-entries", headers=bearer(key["token"]))
    assert no_scope.status_code == 403 and no_scope.json()["error"]["code"] == "insufficient_scope"
    reader = await create_key(http, tenant.admin.headers, ["audit:read"])
    assert (await http.get("/api/v1/audit-entries", headers=bearer(reader["token"]))).status_code == 200


async def test_pages_walk_the_chain_in_order_and_entries_link_up(http: httpx.AsyncClient,
                                                                 tenant: TenantFixture) -> None:
    for _ in range(3):
        await create_user(http, tenant.admin.headers)
    seen: list[dict] = []
    params: dict[str, object] = {"limit": 2}
    while True:
        page = (await http.get("/api/v1/audit-entries", params=params, headers=tenant.admin.headers)).json()
        seen += page["data"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    # The fixture's three users plus ours: six creations, one chain with no gap and no fork.
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 6
    assert seen[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(seen, seen[1:]))
    assert all(e["at"].endswith("Z") for e in seen)
    for bad in ("not-base64!", "YWJj", "YXVkX3g"):  # junk, "abc", "aud_x"
        r = await http.get("/api/v1/audit-entries", params={"cursor": bad}, headers=tenant.admin.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"


async def test_filters_combine(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    user = await create_user(http, tenant.admin.headers)
    await http.patch(f"/api/v1/users/{user['id']}", json={"role": "supervisor"}, headers=tenant.admin.headers)
    about_user = await audit_entries(http, tenant.admin.headers, target_id=user["id"])
    assert [e["action"] for e in about_user] == ["user.created", "user.role_changed"]
    by_admin = await audit_entries(http, tenant.admin.headers, actor_id=tenant.admin.id, action="user.role_changed")
    assert [e["target_id"] for e in by_admin] == [user["id"]]
    system = await audit_entries(http, tenant.admin.headers, action="user.created", target_type="user")
    assert {e["actor_type"] for e in system} == {"system", "user"}  # fixture users come from the system
    junk = await http.get("/api/v1/audit-entries", params={"action": "x\x00y"}, headers=tenant.admin.headers)
    assert junk.status_code == 422
