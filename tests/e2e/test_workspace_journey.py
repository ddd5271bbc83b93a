"""The whole journey of issue 6 in three browser contexts against one real server: a customer chats in the
widget, the agent (routed by a queue) accepts the offer, sees the customer's orders and acts on one, replies
and resolves, the customer rates the service, and a supervisor watches the queue change.
"""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import LiveServer
from tests.e2e.test_workspace import agent_page, browser, customer_page, customer_says, kefu  # noqa: F401
from tests.factories import TenantFixture


async def _ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def test_routed_chat_with_orders_rating_and_supervisor(server: LiveServer, tenant: TenantFixture,
                                                             browser: Browser) -> None:  # noqa: F811
    admin = tenant.admin.headers
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        await _ok(await http.put(f"/api/v1/routing/agents/{tenant.agent.id}", headers=admin,
                                 json={"languages": ["zh", "en"], "capacities": {"chat": 3}}), 201)
        await _ok(await http.put(f"/api/v1/routing/agents/{tenant.agent.id}/presence", headers=admin,
                                 json={"presence": "away", "reason": "lunch"}))
        queue = await _ok(await http.post("/api/v1/routing/queues", headers=admin, json={
            "name": f"After-sales {uuid.uuid4().hex[:4]}", "offer_timeout_seconds": 120}), 201)
        await _ok(await http.post("/api/v1/routing/workflows", headers=admin, json={
            "name": "Default", "is_default": True, "default_targets": [{"queue_id": queue["id"]}]}), 201)

    # The supervisor watches the queue.
    sup_ctx, supervisor = await agent_page(browser, server, tenant.supervisor)
    await supervisor.get_by_test_id("nav-supervisor").click()
    row = supervisor.get_by_test_id("queue-stats").locator(f"[data-queue-id={queue['id']}]")
    await expect(row.get_by_test_id("waiting")).to_have_text("0", timeout=10_000)

    # The agent is on lunch: the customer's chat waits in the queue.
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    presence = agent.get_by_test_id("presence")
    await expect(presence).to_have_value("away:lunch", timeout=10_000)
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "我想取消还没付款的订单")
    # The engine files the waiting task under its queue (or, in engines that place tasks only when someone
    # is available, under "not yet in a queue"): either way the supervisor sees exactly one waiting chat.
    unrouted = supervisor.get_by_test_id("unrouted").get_by_test_id("waiting")
    waiting = [row.get_by_test_id("waiting"), unrouted]
    for _ in range(60):
        counts = [int(await cell.inner_text() or 0) for cell in waiting]
        if sum(counts) == 1:
            break
        await supervisor.wait_for_timeout(250)
    assert sum(counts) == 1, counts

    # The shop knows this customer as c1001 (its orders come from the demo shop connector).
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        [conv] = (await _ok(await http.get("/api/v1/conversations", headers=admin)))["data"]
        await _ok(await http.post(f"/api/v1/contacts/{conv['contact_id']}/identities", headers=admin,
                                  json={"kind": "external", "value": "c1001"}), 201)

    # Available again: the offer pops up with a countdown; accepting opens the conversation.
    await presence.select_option("available")
    offer = agent.get_by_test_id("offer")
    await expect(offer).to_be_visible(timeout=15_000)
    await expect(offer.get_by_test_id("countdown")).to_contain_text("s left")
    # The card says who is asking, on which channel, through which queue, before the agent accepts.
    who = offer.get_by_test_id("offer-who")
    for text in ("Web chat", "c1001", queue["name"]):
        await expect(who).to_contain_text(text, timeout=10_000)
    await expect(row.get_by_test_id("offered")).to_have_text("1", timeout=15_000)
    await offer.get_by_test_id("offer-accept").click()
    await expect(offer).to_have_count(0)
    await expect(agent.get_by_test_id("assignee")).to_have_text("You", timeout=10_000)
    await expect(agent.get_by_test_id("messages").locator("[data-sender=customer] .body")).to_have_text(
        "我想取消还没付款的订单")
    await expect(row.get_by_test_id("assigned")).to_have_text("1", timeout=15_000)
    await expect(unrouted).to_have_text("0")

    # The customer 360 panel: the orders from the shop, return eligibility, and a confirmed cancel.
    orders = agent.get_by_test_id("orders")
    unpaid = orders.locator("[data-order-id=DS100004]")
    await expect(unpaid).to_be_visible(timeout=15_000)
    await expect(unpaid.get_by_test_id("order-status")).to_have_text("Unpaid")  # in words, not the shop's code
    delivered = orders.locator("[data-order-id=DS100001]")
    await delivered.get_by_test_id("order-details").click()
    await delivered.get_by_test_id("action-return").click()
    await expect(delivered.get_by_test_id("eligibility")).to_contain_text("ligible")
    await unpaid.get_by_test_id("order-details").click()
    await unpaid.get_by_test_id("action-cancel").click()
    await expect(unpaid.get_by_test_id("action-form")).to_contain_text("Cancel order for order DS100004?")
    await unpaid.get_by_test_id("action-confirm").click()
    await expect(unpaid.get_by_test_id("order-status")).to_have_text("Cancelled", timeout=15_000)

    # Reply, resolve; the customer sees the reply and rates the service; the agent sees the rating.
    await agent.get_by_test_id("composer").fill("已为您取消订单 DS100004。")
    await agent.get_by_test_id("composer").press("Enter")
    await expect(kefu(customer, "messages").locator("[data-sender=agent] .kefu-bubble")).to_have_text(
        "已为您取消订单 DS100004。", timeout=10_000)
    await agent.get_by_test_id("disposition").select_option("solved")
    await agent.get_by_test_id("resolve").click()
    await expect(agent.get_by_test_id("conv-status")).to_have_text("Resolved")
    await expect(agent.get_by_test_id("conv-disposition")).to_have_text("Disposition: Solved")
    csat = kefu(customer, "csat")
    await expect(csat).to_be_visible(timeout=10_000)
    await kefu(customer, "star-5").click()
    await kefu(customer, "csat-comment").fill("very quick")
    await kefu(customer, "csat-submit").click()
    await expect(kefu(customer, "csat-thanks")).to_be_visible(timeout=10_000)
    await expect(agent.get_by_test_id("csat")).to_contain_text("Rated 5/5", timeout=10_000)

    # The supervisor's queue empties once the conversation is resolved.
    await expect(row.get_by_test_id("assigned")).to_have_text("0", timeout=15_000)
    for context in (customer_ctx, agent_ctx, sup_ctx):
        await context.close()
