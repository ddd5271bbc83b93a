"""The chat widget's newer parts in a real browser: images, typing both ways, the shop's appearance settings,
phone width, and sending through a network drop."""

from __future__ import annotations

import re
import struct
import zlib

import httpx
from playwright.async_api import Browser, expect

from tests.conftest import LiveServer
from tests.e2e.test_workspace import (  # noqa: F401  (browser is a fixture)
    agent_page,
    browser,
    conversation_item,
    customer_page,
    customer_says,
    kefu,
)
from tests.factories import TenantFixture


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid PNG made here (the server sniffs types from the bytes, so it must be real)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def test_image_upload_and_typing_both_ways(server: LiveServer, tenant: TenantFixture,
                                                 browser: Browser) -> None:  # noqa: F811
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "here is a photo of the damage")
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    await conversation_item(agent, "photo of the damage").click()

    # The customer sends an image: both sides show it as a picture.
    await kefu(customer, "attach").set_input_files(
        {"name": "damage.png", "mimeType": "image/png", "buffer": tiny_png()})
    widget_image = kefu(customer, "messages").locator("[data-sender=customer] img.kefu-attachment")
    await expect(widget_image).to_have_count(1, timeout=10_000)
    await expect(widget_image).to_have_attribute("src", re.compile(r"sig="), timeout=10_000)
    agent_image = agent.get_by_test_id("messages").locator("[data-sender=customer] img.thumb")
    await expect(agent_image).to_have_count(1, timeout=10_000)
    await expect(agent_image).to_have_attribute("alt", "damage.png")
    # The picture loads through its signed URL (decoding finishes after the element appears, so wait for it).
    loaded = await agent.wait_for_function("img => img.complete && img.naturalWidth === 4",
                                           arg=await agent_image.element_handle(), timeout=10_000)
    assert await loaded.json_value() is True, "the agent's browser loaded the picture through its signed URL"

    # Typing indicators: the customer's reach the agent, the agent's reach the customer.
    await kefu(customer, "input").press_sequentially("is it covered", delay=20)
    await expect(agent.get_by_test_id("typing")).to_have_text("Customer is typing…", timeout=10_000)
    await agent.get_by_test_id("composer").press_sequentially("Let me check", delay=20)
    await expect(kefu(customer, "typing")).to_have_text("Agent is typing…", timeout=10_000)
    await agent.get_by_test_id("composer").press("Enter")
    await expect(kefu(customer, "typing")).to_have_text("", timeout=10_000)
    await agent_ctx.close()
    await customer_ctx.close()


async def test_shop_appearance_and_phone_width(server: LiveServer, tenant: TenantFixture,
                                               browser: Browser) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=server.url) as http:
        inbox = await http.get(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers)
        changed = await http.patch(
            f"/api/v1/inboxes/{tenant.inbox_id}/appearance",
            headers={**tenant.admin.headers, "If-Match": inbox.headers["etag"]},
            json={"color": "#e4393c", "position": "left", "greeting_en": "Welcome to our shop!",
                  "launcher_label_en": "Ask us"})
        assert changed.status_code == 200, changed.text
    context = await browser.new_context(locale="en-US", viewport={"width": 375, "height": 667}, is_mobile=True,
                                        has_touch=True)
    page = await context.new_page()
    await page.goto(f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}")
    await kefu(page, "launcher").click()
    await expect(kefu(page, "greeting")).to_have_text("Welcome to our shop!", timeout=10_000)
    host = page.locator("[data-kefu-widget]")
    await expect(host).to_have_class(re.compile(r"\bkefu-left\b"))
    await expect(kefu(page, "launcher")).to_have_attribute("aria-label", "Ask us")
    header_colour = await kefu(page, "panel").locator(".kefu-header").evaluate(
        "node => getComputedStyle(node).backgroundColor")
    assert header_colour == "rgb(228, 57, 60)"
    box = await kefu(page, "panel").bounding_box()
    assert box is not None and box["width"] == 375 and box["height"] >= 600, box
    await customer_says(page, "ordering from my phone")
    await expect(kefu(page, "messages").locator("[data-sender=customer]")).to_have_count(1, timeout=10_000)
    await context.close()


async def test_widget_sends_through_a_network_drop_once(server: LiveServer, tenant: TenantFixture,
                                                        browser: Browser) -> None:  # noqa: F811
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "first message")
    await expect(kefu(customer, "messages").locator("[data-message-id]")).to_have_count(1, timeout=10_000)
    await customer_ctx.set_offline(True)
    await customer_says(customer, "sent while the train was in a tunnel")
    await expect(kefu(customer, "messages").locator(".kefu-pending")).to_have_count(1)
    await customer_ctx.set_offline(False)
    await expect(kefu(customer, "messages").locator("[data-message-id]")).to_have_count(2, timeout=20_000)
    await expect(kefu(customer, "messages").locator(".kefu-pending")).to_have_count(0)
    async with httpx.AsyncClient(base_url=server.url) as http:
        convs = (await http.get("/api/v1/conversations", headers=tenant.admin.headers)).json()["data"]
        messages = (await http.get(f"/api/v1/conversations/{convs[0]['id']}/messages",
                                   headers=tenant.admin.headers)).json()["data"]
    assert [m["body"] for m in messages] == ["first message", "sent while the train was in a tunnel"]
    await customer_ctx.close()


async def test_rating_is_asked_after_a_reload_and_never_twice(server: LiveServer, tenant: TenantFixture,
                                                              browser: Browser) -> None:  # noqa: F811
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "where is my refund")
    await expect(kefu(customer, "messages").locator("[data-sender=customer]")).to_have_count(1, timeout=10_000)
    await customer.close()  # the customer leaves before the agent resolves: they never see it live

    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        listed = (await http.get("/api/v1/conversations", headers=tenant.agent.headers)).json()["data"]
        [conversation_id] = [c["id"] for c in listed]
        resolved = await http.post(f"/api/v1/conversations/{conversation_id}/resolve",
                                   headers=tenant.agent.headers, json={"disposition": "solved"})
        assert resolved.status_code == 200, resolved.text

        async def come_back():  # noqa: ANN202 - same browser profile (localStorage), a fresh page
            page = await customer_ctx.new_page()
            await page.goto(f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}")
            await kefu(page, "launcher").click()
            await expect(kefu(page, "status")).to_have_text("Online", timeout=10_000)
            await expect(kefu(page, "messages").locator("[data-sender=customer]")).to_have_count(1, timeout=10_000)
            return page

        # Back after the resolution: the rating form is there for that conversation.
        customer = await come_back()
        form = kefu(customer, "csat")
        await expect(form).to_be_visible(timeout=10_000)
        await expect(form).to_have_attribute("data-conversation-id", conversation_id)
        await kefu(customer, "star-4").click()
        await kefu(customer, "csat-submit").click()
        await expect(kefu(customer, "csat-thanks")).to_be_visible(timeout=10_000)
        ratings = (await http.get(f"/api/v1/conversations/{conversation_id}/csat-ratings",
                                  headers=tenant.agent.headers)).json()["data"]
        assert [r["rating"] for r in ratings] == [4]

        # A later update of the rated conversation arrives live: no second form.
        async with customer.expect_response(lambda r: "/api/v1/widget/csat/prompt" in r.url) as asked:
            changed = await http.patch(f"/api/v1/conversations/{conversation_id}", headers=tenant.agent.headers,
                                       json={"disposition": "follow_up"})
            assert changed.status_code == 200, changed.text
        assert (await (await asked.value).json())["ask"] is False
        await expect(kefu(customer, "csat")).to_have_count(1)
        await expect(kefu(customer, "csat-thanks")).to_be_visible()

        # Reloaded after rating: not asked again.
        async with customer.expect_response(lambda r: "/api/v1/widget/csat/prompt" in r.url) as asked:
            await customer.reload()
        assert (await (await asked.value).json())["ask"] is False
        await kefu(customer, "launcher").click()
        await expect(kefu(customer, "status")).to_have_text("Online", timeout=10_000)
        await expect(kefu(customer, "messages").locator("[data-sender=customer]")).to_have_count(1, timeout=10_000)
        await expect(kefu(customer, "csat")).to_have_count(0)
    await customer_ctx.close()
