"""End to end over real sockets: a customer chats through the widget API, the agent's WebSocket receives the
offer (addressed to that agent), the agent accepts over REST, and the conversation is theirs."""

from __future__ import annotations

import httpx

from tests.channels.chat import customer_says, start_session
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client
from tests.routing.helpers import make_agent, ok, simple_routing, task_of


async def test_widget_chat_is_offered_over_the_agent_websocket_and_accepted(
        http: httpx.AsyncClient, server: LiveServer, tenant: TenantFixture) -> None:
    await simple_routing(http, tenant, sticky_seconds=30)
    await make_agent(http, tenant, tenant.supervisor.id, presence="away")  # online but not ready: no offer
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    try:
        visitor = await start_session(http, tenant.inbox_id)
        said = await customer_says(http, visitor["visitor_token"], "冰箱坏了，想换货")
        offered = await agent.wait_for(lambda f: f["type"] == "routing.offer.created"
                                       and f["data"]["conversation_id"] == said["conversation_id"], timeout=10)
        assert offered["data"]["agent_id"] == tenant.agent.id
        offer = offered["data"]["offer"]
        assert offer["status"] == "pending" and offer["expires_at"] > offer["created_at"]
        task = await ok(await http.post(f"/api/v1/routing/offers/{offer['id']}/accept", headers=tenant.agent.headers))
        assert task["conversation_id"] == said["conversation_id"] and task["status"] == "assigned"
        assigned = await agent.wait_for(lambda f: f["type"] == "conversation.updated"
                                        and f["data"]["conversation"]["id"] == said["conversation_id"]
                                        and f["data"]["conversation"]["assignee_id"] == tenant.agent.id, timeout=10)
        assert assigned["data"]["conversation"]["owner_kind"] == "agent"
        # The same customer writing again joins the same conversation: no second task.
        await customer_says(http, visitor["visitor_token"], "还在吗？")
        tasks = (await ok(await http.get("/api/v1/routing/tasks", headers=tenant.admin.headers,
                                         params={"conversation_id": said["conversation_id"]})))["data"]
        assert len(tasks) == 1
        # Statistics show the answered contact.
        stats = await ok(await http.get("/api/v1/routing/stats", headers=tenant.supervisor.headers))
        [queue] = stats["queues"]
        assert queue["answered"] == 1 and queue["assigned"] == 1 and queue["waiting"] == 0
        assert queue["service_level"] == 1.0 and queue["agents_eligible"] == 2
        # Resolving completes the task. The customer's next message starts a new conversation, which goes to
        # the agent who served them (sticky), although the supervisor has been idle longer.
        await ok(await http.post(f"/api/v1/conversations/{said['conversation_id']}/resolve",
                                 headers=tenant.agent.headers))
        assert (await task_of(http, tenant, said["conversation_id"]))["status"] == "completed"  # type: ignore[index]
        await ok(await http.put(f"/api/v1/routing/agents/{tenant.supervisor.id}/presence",
                                headers=tenant.supervisor.headers, json={"presence": "available"}))
        again = await customer_says(http, visitor["visitor_token"], "又坏了")
        assert again["conversation_id"] != said["conversation_id"]
        sticky = await agent.wait_for(lambda f: f["type"] == "routing.offer.created"
                                      and f["data"]["conversation_id"] == again["conversation_id"], timeout=10)
        assert sticky["data"]["agent_id"] == tenant.agent.id
    finally:
        await agent.close()
