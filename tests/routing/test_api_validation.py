"""Bad input to the routing API: clear 4xx answers with stable codes, and routing state left as it was."""

from __future__ import annotations

import httpx

from tests.factories import TenantFixture
from tests.routing.helpers import make_agent, make_queue, make_workflow, ok

MISSING_QUEUE = "que_01jd0000000000000000000000"


def code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


async def test_a_bad_expression_is_rejected_at_save_time_with_its_position(http: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    response = await http.post("/api/v1/routing/queues", headers=admin,
                               json={"name": "broken", "target_expression": "skills.returns >= AND vip"})
    assert response.status_code == 422 and code(response) == "invalid_expression"
    assert response.json()["error"]["details"] == {"field": "target_expression", "position": 18,
                                                   "reason": "expected_value"}
    zh = await http.post("/api/v1/routing/queues", headers={**admin, "Accept-Language": "zh"},
                         json={"name": "broken", "target_expression": "vip =="})
    assert "第 6 个字符" in zh.json()["error"]["message"]
    checked = await ok(await http.post("/api/v1/routing/expressions/validate", headers=admin,
                                       json={"expression": "languages HAS task.language"}))
    assert checked == {"valid": True, "task_attributes": ["language"]}
    listed = await ok(await http.get("/api/v1/routing/queues", headers=admin))
    assert listed["data"] == []  # nothing was saved


async def test_workflows_refuse_unknown_queues_empty_and_cyclic_definitions(http: httpx.AsyncClient,
                                                                           tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    unknown = await http.post("/api/v1/routing/workflows", headers=admin,
                              json={"name": "w", "default_targets": [{"queue_id": MISSING_QUEUE}]})
    assert unknown.status_code == 404 and code(unknown) == "queue_not_found"
    assert unknown.json()["error"]["details"]["field"] == "default_targets[0].queue_id"
    empty = await http.post("/api/v1/routing/workflows", headers=admin, json={"name": "w"})
    assert empty.status_code == 422 and code(empty) == "workflow_empty"
    no_targets = await http.post("/api/v1/routing/workflows", headers=admin, json={
        "name": "w", "filters": [{"name": "vip", "expression": "vip_level > 2", "targets": []}]})
    assert no_targets.status_code == 422 and code(no_targets) == "workflow_empty"
    queue = await make_queue(http, tenant)
    first = await make_workflow(http, tenant, default_targets=[{"queue_id": queue["id"]}])
    second = await make_workflow(http, tenant, is_default=False, default_targets=[{"workflow_id": first["id"]}])
    cyclic = await http.put(f"/api/v1/routing/workflows/{first['id']}", headers=admin, json={
        "name": "loops", "default_targets": [{"workflow_id": second["id"]}]})
    assert cyclic.status_code == 422 and code(cyclic) == "workflow_cycle"
    assert cyclic.json()["error"]["details"]["cycle"] == [first["id"], second["id"], first["id"]]
    itself = await http.put(f"/api/v1/routing/workflows/{first['id']}", headers=admin, json={
        "name": "loops", "default_targets": [{"workflow_id": first["id"]}]})
    assert code(itself) == "workflow_cycle"
    unchanged = await ok(await http.get(f"/api/v1/routing/workflows/{first['id']}", headers=admin))
    assert unchanged == first
    both = await http.post("/api/v1/routing/workflows", headers=admin, json={
        "name": "w", "default_targets": [{"queue_id": queue["id"], "workflow_id": first["id"]}]})
    assert both.status_code == 422 and code(both) == "invalid_target"
    stale = await http.put(f"/api/v1/routing/workflows/{first['id']}", headers={**admin, "If-Match": '"7"'},
                           json={"name": "x", "default_targets": [{"queue_id": queue["id"]}]})
    assert stale.status_code == 409 and code(stale) == "version_conflict"


async def test_agent_profiles_refuse_negative_capacities_and_unknown_users(http: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    created = await make_agent(http, tenant, tenant.agent.id, capacities={"voice": 1, "chat": 3, "email": 0})
    negative = await http.put(f"/api/v1/routing/agents/{tenant.agent.id}", headers=admin,
                              json={"capacities": {"chat": -1}})
    assert negative.status_code == 422 and code(negative) == "validation_error"
    assert negative.json()["error"]["details"]["errors"][0]["loc"][-1] == "chat"
    nobody = await http.put("/api/v1/routing/agents/usr_01jd0000000000000000000000", headers=admin,
                            json={"skills": {"returns": 1}})
    assert nobody.status_code == 404 and code(nobody) == "agent_not_found"
    profile = await ok(await http.get(f"/api/v1/routing/agents/{tenant.agent.id}", headers=admin))
    assert profile["capacities"] == {"voice": 1, "chat": 3, "email": 0} and profile["version"] == created["version"]
    assert profile["presence"] == "available"


async def test_agents_set_only_their_own_presence_and_cannot_configure_routing(http: httpx.AsyncClient,
                                                                              tenant: TenantFixture) -> None:
    await make_agent(http, tenant, tenant.agent.id)
    await make_agent(http, tenant, tenant.supervisor.id)
    own = await ok(await http.put(f"/api/v1/routing/agents/{tenant.agent.id}/presence", headers=tenant.agent.headers,
                                  json={"presence": "away", "reason": "lunch"}))
    assert (own["presence"], own["presence_reason"]) == ("away", "lunch")
    other = await http.put(f"/api/v1/routing/agents/{tenant.supervisor.id}/presence", headers=tenant.agent.headers,
                           json={"presence": "offline"})
    assert other.status_code == 403
    config = await http.post("/api/v1/routing/queues", headers=tenant.agent.headers, json={"name": "mine"})
    assert config.status_code == 403
    transfer = await http.post("/api/v1/routing/tasks/tsk_01jd0000000000000000000000/transfer",
                               headers=tenant.agent.headers, json={"queue_id": MISSING_QUEUE})
    assert transfer.status_code == 404 and code(transfer) == "task_not_found"
    offer = await http.post("/api/v1/routing/offers/off_01jd0000000000000000000000/accept",
                            headers=tenant.agent.headers)
    assert offer.status_code == 404 and code(offer) == "offer_not_found"
