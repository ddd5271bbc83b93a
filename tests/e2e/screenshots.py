"""Screenshots of the main screens for the README: ``make screenshots`` (or
``python -m tests.e2e.screenshots docs/screenshots``).

Starts its own server on a throw-away SQLite database with the demo shop, plays a short day (a customer asks
for a human, the agent accepts the offer, looks at the orders, replies and resolves, the customer rates) in
Debian's chromium, and writes PNGs. Not a test: it asserts only what it needs to take the pictures.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright, expect

from kefu.api.v1.ui import UI_DIST
from kefu.core.migrate import upgrade
from kefu.demo.seed import seed_demo
from kefu.runtime import build_runtime
from tests.conftest import LiveServer, close_runtime, make_settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--font-render-hinting=none"]
LAPTOP = {"width": 1440, "height": 860}
AGENT = ("agent@demo.kefu.local", "kefu-agent-demo")
SUPERVISOR = ("supervisor@demo.kefu.local", "kefu-supervisor-demo")
ADMIN = ("admin@demo.kefu.local", "kefu-admin-demo")


async def login(page: Page, base: str, who: tuple[str, str]) -> None:
    await page.goto(f"{base}/app/")
    await page.locator("input[name=email]").fill(who[0])
    await page.locator("input[name=password]").fill(who[1])
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "online", timeout=15_000)


def kefu(page: Page, name: str):  # noqa: ANN201
    return page.locator(f"[data-kefu={name}]")


async def say(page: Page, text: str) -> None:
    await kefu(page, "input").fill(text)
    await kefu(page, "input").press("Enter")


async def main(out: Path, url: str) -> None:
    settings = make_settings(url)
    runtime = build_runtime(settings)
    await seed_demo(runtime)
    await close_runtime(runtime)
    server = LiveServer(settings).start()
    base = server.url
    try:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            token = (await http.post("/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})).json()["token"]
            admin = {"Authorization": f"Bearer {token}"}
            users = (await http.get("/api/v1/users", headers=admin)).json()["data"]
            agent_ids = [u["id"] for u in users if u["role"] == "agent"]
            for agent_id in agent_ids:
                await http.put(f"/api/v1/routing/agents/{agent_id}", headers=admin,
                               json={"languages": ["zh", "en"], "capacities": {"chat": 4}})
            await http.put(f"/api/v1/routing/agents/{agent_ids[-1]}/presence", headers=admin,
                           json={"presence": "away", "reason": "lunch"})
            # The demo queues accept for the agent at once; for the picture the agent gets an offer card.
            for queue in (await http.get("/api/v1/routing/queues", headers=admin)).json()["data"]:
                if queue.get("auto_accept"):
                    changed = await http.patch(f"/api/v1/routing/queues/{queue['id']}", headers=admin,
                                               json={"auto_accept": False})
                    assert changed.status_code == 200, changed.text
            if not (await http.get("/api/v1/routing/queues", headers=admin)).json()["data"]:
                queue = (await http.post("/api/v1/routing/queues", headers=admin,
                                         json={"name": "售后 After-sales", "offer_timeout_seconds": 120})).json()
                await http.post("/api/v1/routing/workflows", headers=admin, json={
                    "name": "Default", "is_default": True, "default_targets": [{"queue_id": queue["id"]}]})
            await http.post("/api/v1/canned-responses", headers=admin, json={
                "scope": "shared", "shortcut": "ship", "title": "发货时间 Shipping time",
                "body_zh": "{{customer.name}}您好，订单将在 48 小时内发货。",
                "body_en": "Hi {{customer.name}}, your order ships within 48 hours."})

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            # The login screen.
            ctx = await browser.new_context(locale="en-US", viewport=LAPTOP)
            page = await ctx.new_page()
            await page.goto(f"{base}/app/")
            await page.locator("input[name=email]").fill(AGENT[0])
            await page.screenshot(path=str(out / "login.png"))
            await ctx.close()

            # The agent signs in (Chinese browser) and goes available.
            agent_ctx = await browser.new_context(locale="zh-CN", viewport=LAPTOP)
            agent = await agent_ctx.new_page()
            await login(agent, base, AGENT)
            await agent.get_by_test_id("presence").select_option("available")

            # A customer asks the bot, then for a human.
            cust_ctx = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
            customer = await cust_ctx.new_page()
            await customer.goto(f"{base}/demo/shop?customer=c1001")
            await kefu(customer, "launcher").click()
            await expect(kefu(customer, "status")).to_have_text("在线", timeout=15_000)
            await say(customer, "我的订单 DS100011 到哪了？")
            await customer.wait_for_timeout(2500)
            await say(customer, "转人工，我想取消未付款的订单")
            offer = agent.get_by_test_id("offer")
            await expect(offer).to_be_visible(timeout=20_000)
            await expect(offer.get_by_test_id("offer-intent")).to_be_visible(timeout=10_000)
            await agent.screenshot(path=str(out / "offer.png"))
            await offer.get_by_test_id("offer-accept").click()
            orders = agent.get_by_test_id("orders")
            await expect(orders.locator("[data-order-id]").first).to_be_visible(timeout=20_000)
            await orders.locator("[data-order-id=DS100004]").get_by_test_id("order-details").click()
            await orders.locator("[data-order-id=DS100004]").get_by_test_id("action-cancel").click()
            composer = agent.get_by_test_id("composer")
            await composer.fill("/sh")
            await agent.wait_for_timeout(500)
            await agent.screenshot(path=str(out / "workspace-zh.png"))
            await composer.press("Enter")
            await composer.press("Enter")
            await agent.get_by_test_id("disposition").select_option("solved")
            await agent.get_by_test_id("resolve").click()
            await expect(kefu(customer, "csat")).to_be_visible(timeout=15_000)
            await kefu(customer, "star-5").click()
            await kefu(customer, "csat-comment").fill("很快就解决了，谢谢！")
            await customer.screenshot(path=str(out / "widget-csat.png"))
            await kefu(customer, "csat-submit").click()

            # An English-speaking customer on a phone; an English agent view of the same inbox.
            phone_ctx = await browser.new_context(locale="en-US", viewport={"width": 390, "height": 760},
                                                  is_mobile=True, has_touch=True)
            phone = await phone_ctx.new_page()
            await phone.goto(f"{base}/demo/shop?customer=c1002")
            await kefu(phone, "launcher").click()
            await expect(kefu(phone, "status")).to_have_text("Online", timeout=15_000)
            await say(phone, "Hi, I need a human: my parcel is late")
            await phone.wait_for_timeout(2500)
            await phone.screenshot(path=str(out / "widget-mobile.png"))

            en_ctx = await browser.new_context(locale="en-US", viewport=LAPTOP)
            en = await en_ctx.new_page()
            await login(en, base, AGENT)
            await en.get_by_test_id("view-all").click()
            # The resolved chat: its disposition, the customer's rating and the orders on one screen.
            await en.locator(".conv-item[data-status=resolved]").first.click()
            await expect(en.get_by_test_id("conv-disposition")).to_be_visible(timeout=15_000)
            await expect(en.get_by_test_id("csat")).to_be_visible(timeout=15_000)
            await en.wait_for_timeout(1500)
            await en.screenshot(path=str(out / "workspace-en.png"))

            sup_ctx = await browser.new_context(locale="en-US", viewport=LAPTOP)
            sup = await sup_ctx.new_page()
            await login(sup, base, SUPERVISOR)
            await sup.get_by_test_id("nav-supervisor").click()
            await expect(sup.get_by_test_id("queue-stats")).to_be_visible(timeout=15_000)
            await sup.wait_for_timeout(1500)
            await sup.screenshot(path=str(out / "supervisor.png"))
            await browser.close()
    finally:
        server.stop()
    for png in sorted(out.glob("*.png")):
        print(f"{png} {png.stat().st_size // 1024} KiB")


def run(out: Path) -> None:
    if not (UI_DIST / "index.html").is_file():
        raise SystemExit("build the workspace first: make ui")
    out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='kefu-shots-')) / 'kefu.db'}"
    upgrade(url)  # Alembic runs its own event loop, so before ours
    asyncio.run(main(out, url))


if __name__ == "__main__":
    run(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
