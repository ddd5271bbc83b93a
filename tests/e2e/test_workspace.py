"""The agent workspace (ui/, served at /app/) in a real browser against a real server, with a customer in
another browser context chatting through the widget.

Needs the built front end (``make ui``; ``make test`` builds it first) and Debian's chromium.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from kefu.api.v1.ui import UI_DIST
from tests.conftest import LiveServer, unavailable
from tests.factories import TenantFixture, UserFixture

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        unavailable("Debian chromium (make browser installs it)")
    if not (UI_DIST / "index.html").is_file():
        unavailable("the built workspace (make ui)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        await browser.close()


def kefu(page: Page, name: str):  # noqa: ANN201 - a Playwright locator inside the widget's shadow root
    return page.locator(f"[data-kefu={name}]")


async def customer_page(browser: Browser, server: LiveServer, tenant: TenantFixture,
                        locale: str = "en-US") -> tuple[BrowserContext, Page]:
    """A shop visitor with the widget open and connected."""
    context = await browser.new_context(locale=locale)
    page = await context.new_page()
    await page.goto(f"{server.url}/static/widget-demo.html?inbox={tenant.inbox_id}")
    await kefu(page, "launcher").click()
    await expect(kefu(page, "status")).to_have_text("在线" if locale.startswith("zh") else "Online", timeout=10_000)
    return context, page


async def customer_says(page: Page, text: str) -> None:
    await kefu(page, "input").fill(text)
    await kefu(page, "input").press("Enter")


async def agent_page(browser: Browser, server: LiveServer, user: UserFixture,
                     locale: str = "en-US") -> tuple[BrowserContext, Page]:
    """An agent signed in to the workspace through its login form, with the live connection up."""
    context = await browser.new_context(locale=locale, viewport=LAPTOP)
    page = await context.new_page()
    await page.goto(f"{server.url}/")
    await page.get_by_label("Email" if locale.startswith("en") else "邮箱").fill(user.email)
    await page.get_by_label("Password" if locale.startswith("en") else "密码").fill(user.password)
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online", timeout=10_000)
    return context, page


def conversation_item(page: Page, text: str):  # noqa: ANN201
    return page.get_by_test_id("conversation-list").locator(".conv-item", has_text=text)


async def test_customer_and_agent_chat_until_resolved(server: LiveServer, tenant: TenantFixture,
                                                      browser: Browser) -> None:
    customer_ctx, customer = await customer_page(browser, server, tenant)
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    assert agent.url.endswith("/app/") or "/app/" in agent.url

    # The customer writes; the conversation appears in the agent's inbox live, with an unread badge.
    question = f"Where is my parcel? <img src=x onerror=alert(1)> {uuid.uuid4().hex[:6]}"
    await customer_says(customer, question)
    item = conversation_item(agent, question)
    await expect(item).to_be_visible(timeout=10_000)
    await expect(item.get_by_test_id("unread")).to_have_text("1")
    await expect(agent.get_by_test_id("view-unassigned").locator(".badge")).to_have_text("1")

    # Opening it shows the message as text (never HTML) and clears the unread count.
    await item.click()
    timeline = agent.get_by_test_id("messages")
    await expect(timeline.locator("[data-sender=customer] .body")).to_have_text(question)
    assert await agent.locator(".timeline img").count() == 0
    await expect(item.get_by_test_id("unread")).to_have_count(0)

    # Take it, write an internal note (the customer never sees it), then reply with Enter.
    await agent.get_by_test_id("take").click()
    await expect(agent.get_by_test_id("assignee")).to_have_text("You")
    await agent.get_by_test_id("note-toggle").check()
    await agent.get_by_test_id("composer").fill("check the courier first")
    await agent.get_by_test_id("composer").press("Enter")
    # Stored (it has its server id), not just shown as sending, before the reply is written.
    await expect(timeline.locator("[data-private=true][data-message-id] .body")).to_have_text("check the courier first")
    await agent.get_by_test_id("note-toggle").uncheck()
    await agent.get_by_test_id("composer").fill("It left the warehouse today.")
    await agent.get_by_test_id("composer").press("Enter")
    await expect(timeline.locator("[data-sender=agent][data-private=false] .body")).to_have_text(
        "It left the warehouse today.")
    await expect(agent.get_by_test_id("composer")).to_have_value("")

    # The customer sees the reply, not the note; the agent sees the customer has read it.
    widget_messages = kefu(customer, "messages")
    await expect(widget_messages.locator("[data-sender=agent] .kefu-bubble")).to_have_text(
        "It left the warehouse today.", timeout=10_000)
    assert "check the courier" not in await widget_messages.inner_text()
    await expect(timeline.locator("[data-sender=agent][data-private=false] [data-delivery]")).to_have_text(
        "Read", timeout=10_000)

    # A follow-up arrives live in the open conversation, once.
    await customer_says(customer, "thanks, and a tag please")
    await expect(timeline.locator("[data-sender=customer]")).to_have_count(2, timeout=10_000)

    # Tag, then resolve with a disposition (a field of the conversation, not a tag); the customer's widget
    # shows the system message, never the disposition.
    await agent.get_by_test_id("tag-input").fill("shipping")
    await agent.get_by_test_id("tag-input").press("Enter")
    await expect(agent.locator(".conv-header .tag", has_text="shipping")).to_be_visible()
    await agent.get_by_test_id("disposition").select_option("follow_up")
    await agent.get_by_test_id("resolve").click()
    await expect(agent.get_by_test_id("conv-status")).to_have_text("Resolved")
    await expect(agent.get_by_test_id("conv-disposition")).to_have_text("Disposition: Needs follow-up")
    await expect(agent.locator(".conv-header .tag")).to_have_count(1)  # "shipping" only
    await expect(timeline.locator("[data-private=true] .body").last).to_have_text(
        "Disposition: Needs follow-up (follow_up)")
    await expect(agent.get_by_test_id("reopen")).to_be_visible()
    await expect(widget_messages.locator("[data-message-id]")).to_have_count(4, timeout=10_000)  # + system message
    assert "follow" not in (await widget_messages.inner_text()).lower()

    # The inbox filters by disposition: this conversation under "Needs follow-up", not under "Spam".
    conv_id = await agent.get_by_test_id("conversation").get_attribute("data-conversation-id")
    listed = agent.locator(f".conv-item[data-conversation-id='{conv_id}']")
    await agent.get_by_test_id("filter-disposition").select_option("follow_up")
    await expect(listed.get_by_test_id("item-disposition")).to_have_text("Needs follow-up")
    await agent.get_by_test_id("filter-disposition").select_option("spam")
    await expect(listed).to_have_count(0)
    await agent.get_by_test_id("filter-disposition").select_option("")

    # Reopen works too, and clears the disposition (the note stays in the timeline).
    await agent.get_by_test_id("reopen").click()
    await expect(agent.get_by_test_id("conv-status")).to_have_text("Open")
    await expect(agent.get_by_test_id("conv-disposition")).to_have_count(0)
    await expect(timeline.locator("[data-private=true] .body", has_text="follow_up")).to_have_count(1)

    # Every message reached the server exactly once.
    async with httpx.AsyncClient(base_url=server.url) as http:
        conv_id = await agent.get_by_test_id("conversation").get_attribute("data-conversation-id")
        page = (await http.get(f"/api/v1/conversations/{conv_id}/messages?limit=200",
                               headers=tenant.agent.headers)).json()
        bodies = [m["body"] for m in page["data"] if m["sender_kind"] != "system"]
    assert bodies == [question, "check the courier first", "It left the warehouse today.",
                      "thanks, and a tag please"]
    await agent_ctx.close()
    await customer_ctx.close()


async def test_network_drop_mid_send_delivers_once(server: LiveServer, tenant: TenantFixture,
                                                   browser: Browser) -> None:
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "hello from a flaky network")
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    await conversation_item(agent, "flaky network").click()
    timeline = agent.get_by_test_id("messages")
    await expect(timeline.locator("[data-sender=customer]")).to_have_count(1)

    await agent_ctx.set_offline(True)
    await agent.get_by_test_id("composer").fill("sent while offline")
    await agent.get_by_test_id("composer").press("Enter")
    await expect(timeline.locator(".pending-failed")).to_have_count(1, timeout=10_000)
    await expect(timeline.locator(".pending-failed")).to_contain_text("Not sent")
    await agent_ctx.set_offline(False)
    await expect(timeline.locator("[data-sender=agent][data-message-id]")).to_have_count(1, timeout=15_000)
    await expect(timeline.locator(".pending-failed, .pending-sending")).to_have_count(0)
    await expect(kefu(customer, "messages").locator("[data-sender=agent] .kefu-bubble")).to_have_text(
        "sent while offline", timeout=10_000)
    await agent_ctx.close()
    await customer_ctx.close()


async def test_expired_session_returns_to_login_and_keeps_the_draft(server: LiveServer, tenant: TenantFixture,
                                                                     browser: Browser) -> None:
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "is anyone there?")
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    await conversation_item(agent, "anyone there").click()
    await agent.get_by_test_id("composer").fill("a long answer I have not finished")

    # The session ends elsewhere (logged out, expired or revoked): the socket is closed with 4401.
    token = await agent.evaluate("JSON.parse(localStorage.getItem('kefu.session')).token")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})).status_code == 204
    await expect(agent.get_by_test_id("expired")).to_be_visible(timeout=10_000)

    await agent.get_by_label("Password").fill(tenant.agent.password)
    await agent.keyboard.press("Enter")
    await expect(agent.get_by_test_id("connection")).to_have_attribute("data-state", "online", timeout=10_000)
    await conversation_item(agent, "anyone there").click()
    await expect(agent.get_by_test_id("composer")).to_have_value("a long answer I have not finished")
    await agent_ctx.close()
    await customer_ctx.close()


async def test_chinese_browser_and_language_switch(server: LiveServer, tenant: TenantFixture,
                                                   browser: Browser) -> None:
    agent_ctx, agent = await agent_page(browser, server, tenant.agent, locale="zh-CN")
    await expect(agent.get_by_test_id("nav-inbox")).to_have_text("会话")
    await expect(agent.get_by_test_id("view-mine")).to_contain_text("我的")
    await agent.get_by_test_id("language").select_option("en")
    await expect(agent.get_by_test_id("nav-inbox")).to_have_text("Inbox")
    await agent.reload()
    await expect(agent.get_by_test_id("nav-inbox")).to_have_text("Inbox")  # the choice is remembered
    await agent_ctx.close()


async def test_keyboard_only_agent(server: LiveServer, tenant: TenantFixture, browser: Browser) -> None:
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "keyboard question")
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    await expect(conversation_item(agent, "keyboard question")).to_be_visible(timeout=10_000)
    await agent.keyboard.press("Alt+j")  # first conversation
    await expect(agent.get_by_test_id("conversation")).to_be_visible()
    await agent.keyboard.press("Alt+t")  # take
    await expect(agent.get_by_test_id("assignee")).to_have_text("You")
    composer = agent.get_by_test_id("composer")
    await expect(composer).to_be_focused()
    await composer.type("/greet")
    await expect(agent.get_by_test_id("canned")).to_be_visible()
    await composer.press("Enter")  # picks the canned response
    await expect(composer).to_have_value("Hello! Thanks for contacting us. How can I help you today?")
    await composer.press("Enter")  # sends it
    await expect(kefu(customer, "messages").locator("[data-sender=agent] .kefu-bubble")).to_have_text(
        "Hello! Thanks for contacting us. How can I help you today?", timeout=10_000)
    await agent.keyboard.press("Alt+r")  # resolve
    await expect(agent.get_by_test_id("conv-status")).to_have_text("Resolved")
    await agent_ctx.close()
    await customer_ctx.close()


async def test_app_serving_rules(server: LiveServer, http: httpx.AsyncClient) -> None:
    root = await http.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/app/"
    page = await http.get("/app/some/client/route")
    if (UI_DIST / "index.html").is_file():
        assert page.status_code == 200 and '<div id="app">' in page.text
    else:
        assert page.status_code == 503 and "make ui" in page.text
    # A path that climbs out of the build folder never reads a file outside it.
    escaped = await http.get("/app/..%2F..%2F..%2Fpyproject.toml")
    assert "[project]" not in escaped.text
    assert (await http.get("/app/assets/missing.js")).status_code in (404, 503)


async def test_timeline_shows_the_customers_earlier_conversations(server: LiveServer, tenant: TenantFixture,
                                                                  browser: Browser) -> None:
    customer_ctx, customer = await customer_page(browser, server, tenant)
    await customer_says(customer, "my old question about a blender")
    await expect(kefu(customer, "messages").locator("[data-message-id]")).to_have_count(1, timeout=10_000)
    async with httpx.AsyncClient(base_url=server.url) as http:
        [old] = (await http.get("/api/v1/conversations", headers=tenant.admin.headers)).json()["data"]
        closed = await http.patch(f"/api/v1/conversations/{old['id']}", json={"status": "closed"},
                                  headers={**tenant.admin.headers, "If-Match": str(old["version"])})
        assert closed.status_code == 200, closed.text
    await customer_says(customer, "a new question about the same blender")
    agent_ctx, agent = await agent_page(browser, server, tenant.agent)
    await conversation_item(agent, "a new question").click()
    timeline = agent.get_by_test_id("messages")
    await expect(timeline.locator("[data-message-id]")).to_have_count(1)
    await agent.get_by_test_id("load-earlier").click()
    await expect(timeline.get_by_test_id("earlier-separator")).to_have_count(1, timeout=10_000)
    await expect(timeline.locator("[data-earlier-message-id] .body")).to_have_text(["my old question about a blender"])
    await agent_ctx.close()
    await customer_ctx.close()
