"""The chat widget in a real browser (Debian chromium driven by Playwright) against a real server."""

from __future__ import annotations

import functools
import shutil
import threading
import uuid
from collections.abc import AsyncIterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from kefu.contacts import service as contact_service
from kefu.demo.seed import seed_demo
from kefu.runtime import Runtime
from tests.conftest import LiveServer, unavailable
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client, is_ack, is_message

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        unavailable("Debian chromium (make browser installs it)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        await browser.close()


def widget(page: Page, name: str):  # noqa: ANN201 - a Playwright locator
    """A widget part by its data-kefu name (Playwright's CSS engine looks inside the open shadow root)."""
    return page.locator(f"[data-kefu={name}]")


async def open_widget(page: Page, url: str, online_text: str = "Online", timeout_ms: int = 10_000) -> None:
    await page.goto(url)
    await widget(page, "launcher").click()
    await expect(widget(page, "status")).to_have_text(online_text, timeout=timeout_ms)


async def type_message(page: Page, text: str) -> None:
    await widget(page, "input").fill(text)
    await widget(page, "input").press("Enter")


async def test_customer_chats_with_agent_and_reload_keeps_history(
        server: LiveServer, tenant: TenantFixture, browser: Browser, tmp_path: Path) -> None:
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    url = f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}"
    await open_widget(page, url)
    await expect(widget(page, "title")).to_have_text("Chat with us")
    await expect(widget(page, "greeting")).to_contain_text("How can we help")

    question = f"Where is my order? <b>{uuid.uuid4().hex[:6]}</b>"
    await type_message(page, question)
    seen = await agent.wait_for(is_message(question), timeout=10)
    conversation_id = seen["data"]["message"]["conversation_id"]
    answer = "It ships today <script>alert(1)</script>"
    await agent.send({"type": "message.send", "id": "reply-1",
                      "data": {"conversation_id": conversation_id, "body": answer}})
    await agent.wait_for(is_ack("reply-1"))

    messages = widget(page, "messages")
    await expect(messages.locator("[data-message-id]")).to_have_count(2, timeout=10_000)
    await expect(messages.locator("[data-sender=agent] .kefu-bubble")).to_have_text(answer)
    await expect(messages.locator("[data-sender=customer] .kefu-bubble")).to_have_text(question)
    assert await page.locator("b").count() == 0, "message text is never parsed as HTML"

    # Reload: the same visitor resumes, history is shown once, nothing is sent twice.
    await page.reload()
    await widget(page, "launcher").click()
    await expect(widget(page, "status")).to_have_text("Online", timeout=10_000)
    await expect(messages.locator("[data-message-id]")).to_have_count(2, timeout=10_000)
    await expect(messages.locator(".kefu-pending")).to_have_count(0)
    shot = tmp_path / "widget.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 1000
    assert answer in await messages.inner_text()

    # A second message after the reload still reaches the agent, once.
    await type_message(page, "thanks!")
    await agent.wait_for(is_message("thanks!"), timeout=10)
    await expect(messages.locator("[data-message-id]")).to_have_count(3, timeout=10_000)
    await agent.sync()
    bodies = [f["data"]["message"]["body"] for f in agent.received if f["type"] == "message.created"]
    assert bodies == [question, "thanks!"]  # its own answer came back as the ack
    await agent.close()
    await context.close()


async def test_chinese_browser_gets_chinese_widget(server: LiveServer, tenant: TenantFixture,
                                                   browser: Browser, tmp_path: Path) -> None:
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    await open_widget(page, f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}", "在线")
    await expect(widget(page, "title")).to_have_text("在线客服")
    await expect(widget(page, "send")).to_have_text("发送")
    await expect(widget(page, "input")).to_have_attribute("placeholder", "请输入消息…")
    await expect(widget(page, "greeting")).to_have_text("您好！请问有什么可以帮您？")
    await page.screenshot(path=str(tmp_path / "widget-zh.png"))
    await context.close()


async def test_http_fallback_when_websockets_are_blocked(server: LiveServer, tenant: TenantFixture,
                                                         browser: Browser) -> None:
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    context = await browser.new_context(locale="en-US")
    await context.add_init_script("window.WebSocket = undefined;")  # as behind a proxy that breaks upgrades
    page = await context.new_page()
    await open_widget(page, f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}",
                      "Online (compatibility mode)")
    await type_message(page, "sent over HTTP")
    seen = await agent.wait_for(is_message("sent over HTTP"), timeout=10)
    await agent.send({"type": "message.send", "id": "r-http", "data": {
        "conversation_id": seen["data"]["message"]["conversation_id"], "body": "received by long-poll"}})
    messages = widget(page, "messages")
    await expect(messages.locator("[data-sender=agent] .kefu-bubble")).to_have_text("received by long-poll",
                                                                                     timeout=10_000)
    await expect(messages.locator("[data-message-id]")).to_have_count(2)
    await agent.close()
    await context.close()


async def test_demo_shop_with_a_signed_in_customer(server: LiveServer, runtime: Runtime, browser: Browser,
                                                   http: httpx.AsyncClient) -> None:
    demo = await seed_demo(runtime)
    login = await http.post("/api/v1/auth/login", json={"email": "agent@demo.kefu.local",
                                                        "password": "kefu-agent-demo"})
    assert login.status_code == 200, login.text
    agent, _, _ = await agent_client(server.ws_url, login.json()["token"])
    customer = f"c{uuid.uuid4().hex[:8]}"
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    await open_widget(page, f"{server.url}/demo/shop?customer={customer}", "在线")
    await expect(page.get_by_test_id("who")).to_contain_text(customer)
    await expect(widget(page, "greeting")).to_have_text("您好，欢迎光临 Kefu 演示商城！请问有什么可以帮您？")
    await type_message(page, "我想退货")
    seen = await agent.wait_for(is_message("我想退货"), timeout=10)
    async with runtime.sessionmaker() as db:
        identity = await contact_service.find_identity(session=db, tenant_id=demo.tenant_id, kind="external",
                                                       value=customer)
    assert identity is not None and identity.verified
    assert seen["data"]["conversation"]["contact_id"] == identity.contact_id
    await agent.close()
    await context.close()


async def test_widget_embedded_on_another_origin(server: LiveServer, tenant: TenantFixture, browser: Browser,
                                                 tmp_path: Path) -> None:
    (tmp_path / "shop.html").write_text(
        f'<!doctype html><title>Shop</title><h1>Another shop</h1>'
        f'<script src="{server.url}/static/widget.js" data-inbox="{tenant.inbox_id}" async></script>')
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    shop = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=shop.serve_forever, daemon=True).start()
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    context = await browser.new_context(locale="en-US")
    try:
        page = await context.new_page()
        await open_widget(page, f"http://127.0.0.1:{shop.server_address[1]}/shop.html", timeout_ms=5000)
        await type_message(page, "hello from another origin")
        await agent.wait_for(is_message("hello from another origin"), timeout=10)
    finally:
        await context.close()
        await agent.close()
        shop.shutdown()


async def test_read_receipts_in_both_directions(server: LiveServer, tenant: TenantFixture, browser: Browser) -> None:
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await open_widget(page, f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}")
    await type_message(page, "is my parcel on its way?")
    seen = await agent.wait_for(is_message("is my parcel on its way?"), timeout=10)
    question = seen["data"]["message"]
    await agent.send({"type": "message.send", "id": "r-read",
                      "data": {"conversation_id": question["conversation_id"], "body": "Yes, it left today."}})
    reply = (await agent.wait_for(is_ack("r-read")))["data"]["message"]

    # The open widget shows the reply, so the agent learns it was read.
    receipt = await agent.wait_for(lambda f: f["type"] == "message.updated"
                                   and (f["data"].get("read") or {}).get("by") == "customer", timeout=10)
    assert receipt["data"]["read"]["message_ids"] == [reply["id"]]

    # The agent reads the question; the customer sees "Read" under it.
    async with httpx.AsyncClient(base_url=server.url) as http:
        marked = await http.post(f"/api/v1/conversations/{question['conversation_id']}/read",
                                 headers=tenant.agent.headers, json={"up_to_message_id": question["id"]})
        assert marked.json()["message_ids"] == [question["id"]]
    mine = widget(page, "messages").locator("[data-sender=customer]")
    await expect(mine).to_have_attribute("data-read", "true", timeout=10_000)
    await expect(mine.locator(".kefu-meta")).to_contain_text("Read")
    await agent.close()
    await context.close()
