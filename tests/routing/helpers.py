"""Helpers for routing tests: configure a tenant's routing through the real API and wait for the engine."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.factories import TenantFixture


async def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


async def make_agent(http: httpx.AsyncClient, tenant: TenantFixture, agent_id: str, *, presence: str = "available",
                     **profile: Any) -> dict[str, Any]:
    body = {"skills": {"returns": 3}, "languages": ["zh", "en"], **profile}
    response = await http.put(f"/api/v1/routing/agents/{agent_id}", headers=tenant.admin.headers, json=body)
    assert response.status_code in (200, 201), response.text
    await ok(await http.put(f"/api/v1/routing/agents/{agent_id}/presence", headers=tenant.admin.headers,
                            json={"presence": presence}))
    return response.json()


async def make_queue(http: httpx.AsyncClient, tenant: TenantFixture, **fields: Any) -> dict[str, Any]:
    body = {"name": "售后 After-sales", **fields}
    return await ok(await http.post("/api/v1/routing/queues", headers=tenant.admin.headers, json=body), 201)


async def make_workflow(http: httpx.AsyncClient, tenant: TenantFixture, **fields: Any) -> dict[str, Any]:
    body = {"name": "Default", "is_default": True, **fields}
    return await ok(await http.post("/api/v1/routing/workflows", headers=tenant.admin.headers, json=body), 201)


async def simple_routing(http: httpx.AsyncClient, tenant: TenantFixture, *, sticky_seconds: int = 0,
                         **queue_fields: Any) -> dict[str, Any]:
    """One queue for everybody, as the default workflow, and the tenant's agent available."""
    await make_agent(http, tenant, tenant.agent.id)
    queue = await make_queue(http, tenant, **queue_fields)
    await make_workflow(http, tenant, default_targets=[{"queue_id": queue["id"]}], sticky_seconds=sticky_seconds)
    return queue


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def pending_offers(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/routing/offers", headers=headers, params={"status": "pending"})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def task_of(http: httpx.AsyncClient, tenant: TenantFixture, conversation_id: str) -> dict[str, Any] | None:
    response = await http.get("/api/v1/routing/tasks", headers=tenant.admin.headers,
                              params={"conversation_id": conversation_id})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data[-1] if data else None


async def start_conversation(runtime: Any, tenant: TenantFixture, *, vip_level: int = 0, locale: str = "zh",
                             contact_id: str | None = None) -> tuple[str, str]:
    """A customer writes in (through the domain actions, as a channel would); returns (conversation, contact)."""
    from kefu.contacts import actions as contact_actions
    from kefu.contacts.schemas import ContactCreate
    from kefu.conversations import actions as conversation_actions

    uow = runtime.unit_of_work()
    try:
        if contact_id is None:
            contact = await contact_actions.do_create_contact(
                uow, tenant_id=tenant.id, data=ContactCreate(name="顾客", vip_level=vip_level))
            contact_id = contact.id
        conversation = await conversation_actions.do_open_conversation(
            uow, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=contact_id, channel="webchat",
            locale=locale)
        await conversation_actions.do_post_message(uow, conversation=conversation, sender_kind="customer",
                                                   sender_id=contact_id, body="我要退货 I want to return this")
        await uow.commit()
    finally:
        await uow.session.close()
    return conversation.id, contact_id
