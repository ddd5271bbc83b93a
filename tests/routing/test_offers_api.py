"""Offers over the real API: a customer's chat is offered to an eligible agent, who accepts or rejects it."""

from __future__ import annotations

import httpx

from kefu.runtime import Runtime
from tests.factories import TenantFixture
from tests.routing.helpers import ok, pending_offers, simple_routing, start_conversation, task_of, wait_for


async def test_chat_is_offered_and_accepting_assigns_the_conversation(
        http: httpx.AsyncClient, runtime: Runtime, tenant: TenantFixture) -> None:
    await simple_routing(http, tenant)
    conversation_id, _ = await start_conversation(runtime, tenant)
    offers = await wait_for(lambda: pending_offers(http, tenant.agent.headers))
    [offer] = offers
    assert offer["agent_id"] == tenant.agent.id
    task = await ok(await http.post(f"/api/v1/routing/offers/{offer['id']}/accept", headers=tenant.agent.headers))
    assert task["status"] == "assigned" and task["agent_id"] == tenant.agent.id
    conversation = await ok(await http.get(f"/api/v1/conversations/{conversation_id}", headers=tenant.admin.headers))
    assert conversation["assignee_id"] == tenant.agent.id and conversation["owner_kind"] == "agent"
    again = await http.post(f"/api/v1/routing/offers/{offer['id']}/accept", headers=tenant.agent.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "offer_not_pending"
    # Resolving frees the capacity: the task completes.
    await ok(await http.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=tenant.agent.headers))
    done = await task_of(http, tenant, conversation_id)
    assert done is not None and done["status"] == "completed" and done["end_reason"] == "resolved"


async def test_someone_elses_offer_is_refused_and_a_reject_or_transfer_moves_the_chat(
        http: httpx.AsyncClient, runtime: Runtime, tenant: TenantFixture) -> None:
    from tests.routing.helpers import make_agent, make_queue

    await simple_routing(http, tenant)
    conversation_id, _ = await start_conversation(runtime, tenant)
    [offer] = await wait_for(lambda: pending_offers(http, tenant.agent.headers))
    stolen = await http.post(f"/api/v1/routing/offers/{offer['id']}/accept", headers=tenant.supervisor.headers)
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "offer_not_yours"
    assert (await task_of(http, tenant, conversation_id))["status"] == "offered"  # type: ignore[index]
    # The agent turns it down; with nobody else eligible it waits (not back to the same agent at once).
    rejected = await ok(await http.post(f"/api/v1/routing/offers/{offer['id']}/reject", headers=tenant.agent.headers))
    assert rejected["status"] == "waiting"
    # A supervisor transfers it to a VIP queue that only the supervisor serves.
    await make_agent(http, tenant, tenant.supervisor.id, vip=True)
    vip = await make_queue(http, tenant, name="VIP", target_expression="vip == true")
    moved = await ok(await http.post(f"/api/v1/routing/tasks/{rejected['id']}/transfer",
                                     headers=tenant.supervisor.headers, json={"queue_id": vip["id"]}))
    assert moved["queue_id"] == vip["id"] and moved["pinned_queue_id"] == vip["id"]
    [offer2] = await wait_for(lambda: pending_offers(http, tenant.supervisor.headers))
    assert offer2["task_id"] == rejected["id"]
    await ok(await http.post(f"/api/v1/routing/offers/{offer2['id']}/accept", headers=tenant.supervisor.headers))
    conversation = await ok(await http.get(f"/api/v1/conversations/{conversation_id}", headers=tenant.admin.headers))
    assert conversation["assignee_id"] == tenant.supervisor.id
    # The agent may not transfer what they do not hold; a transfer needs exactly one target.
    refused = await http.post(f"/api/v1/routing/tasks/{rejected['id']}/transfer", headers=tenant.agent.headers,
                              json={"queue_id": vip["id"]})
    assert refused.status_code == 403
    neither = await http.post(f"/api/v1/routing/tasks/{rejected['id']}/transfer", headers=tenant.supervisor.headers,
                              json={})
    assert neither.status_code == 422 and neither.json()["error"]["code"] == "invalid_transfer"
