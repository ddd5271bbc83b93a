"""Teaches the tenant-isolation walker the routing domain's path parameters (see tests/api)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import TenantFixture
from tests.routing.helpers import make_agent, make_queue, make_workflow, pending_offers, task_of, wait_for


async def objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, str]:
    """An agent profile, a queue, a workflow, and the task and offer of tenant A's conversation."""
    await make_agent(http, tenant, tenant.agent.id)
    queue = await make_queue(http, tenant, offer_timeout_seconds=3600)  # nothing may change during the walk
    workflow = await make_workflow(http, tenant, default_targets=[{"queue_id": queue["id"]}])
    # The walker's conversation was created before routing existed for this tenant: it is queued already.
    task = await wait_for(lambda: task_of(http, tenant, ids["conversation_id"]))
    [offer, *_] = await wait_for(lambda: pending_offers(http, tenant.agent.headers))
    await wait_for(lambda: _nothing_waiting(http, tenant))
    return {"agent_id": tenant.agent.id, "queue_id": queue["id"], "workflow_id": workflow["id"],
            "task_id": task["id"], "offer_id": offer["id"]}


def snapshot_paths(ids: dict[str, Any]) -> list[str]:
    return [f"/api/v1/routing/agents/{ids['agent_id']}", f"/api/v1/routing/queues/{ids['queue_id']}",
            f"/api/v1/routing/workflows/{ids['workflow_id']}", f"/api/v1/routing/tasks/{ids['task_id']}"]


async def _nothing_waiting(http: httpx.AsyncClient, tenant: TenantFixture) -> bool:
    response = await http.get("/api/v1/routing/tasks", headers=tenant.admin.headers, params={"status": "waiting"})
    return response.status_code == 200 and response.json()["data"] == []
