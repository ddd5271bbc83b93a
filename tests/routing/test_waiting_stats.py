"""A chat that arrives while every agent is away waits in its queue, where a supervisor sees it (REST and the
pushed statistics) with its growing wait, and is offered as soon as an agent becomes available."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from kefu.runtime import Runtime
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client
from tests.routing.helpers import (
    make_agent,
    make_queue,
    make_workflow,
    ok,
    pending_offers,
    start_conversation,
    task_of,
    wait_for,
)


async def _queue_stats(http: httpx.AsyncClient, tenant: TenantFixture, queue_id: str) -> dict[str, Any]:
    return await ok(await http.get(f"/api/v1/routing/queues/{queue_id}/stats", headers=tenant.supervisor.headers))


async def test_a_chat_waits_in_its_queue_while_everybody_is_away_and_is_offered_when_an_agent_returns(
        http: httpx.AsyncClient, server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    await make_agent(http, tenant, tenant.agent.id, presence="away")
    queue = await make_queue(http, tenant, offer_timeout_seconds=600)
    await make_workflow(http, tenant, default_targets=[{"queue_id": queue["id"]}])
    supervisor, _, _ = await agent_client(server.ws_url, tenant.supervisor.token)
    try:
        conversation_id, _ = await start_conversation(runtime, tenant)

        async def counted_as_waiting() -> dict[str, Any] | None:
            stats = await _queue_stats(http, tenant, queue["id"])
            return stats if stats["waiting"] == 1 and stats["longest_wait_seconds"] > 0 else None

        first = await wait_for(counted_as_waiting)
        assert first["offered"] == 0 and first["agents_available"] == 0 and first["agents_eligible"] == 1
        task = await task_of(http, tenant, conversation_id)
        assert task is not None and task["status"] == "waiting" and task["queue_id"] == queue["id"]
        # Supervisors get the same figures pushed over their WebSocket.
        pushed = await supervisor.wait_for(
            lambda f: f["type"] == "routing.queue.stats"
            and any(q["queue_id"] == queue["id"] and q["waiting"] == 1 for q in f["data"]["stats"]["queues"]),
            timeout=15)
        [mine] = [q for q in pushed["data"]["stats"]["queues"] if q["queue_id"] == queue["id"]]
        assert mine["longest_wait_seconds"] > 0 and mine["agents_available"] == 0
        # The wait keeps growing while nobody can take the chat, and nobody is offered it.
        await asyncio.sleep(1.0)
        later = await _queue_stats(http, tenant, queue["id"])
        assert later["waiting"] == 1
        assert later["longest_wait_seconds"] >= first["longest_wait_seconds"] + 0.9
        assert await pending_offers(http, tenant.agent.headers) == []

        # The agent comes back from lunch: the chat is offered to them at once.
        await ok(await http.put(f"/api/v1/routing/agents/{tenant.agent.id}/presence", headers=tenant.agent.headers,
                                json={"presence": "available"}))
        [offer] = await wait_for(lambda: pending_offers(http, tenant.agent.headers), timeout=5)
        assert offer["task_id"] == task["id"] and offer["queue_id"] == queue["id"]
        after = await _queue_stats(http, tenant, queue["id"])
        assert after["waiting"] == 0 and after["offered"] == 1 and after["longest_wait_seconds"] == 0
    finally:
        await supervisor.close()
