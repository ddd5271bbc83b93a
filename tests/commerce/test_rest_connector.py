"""The generic REST connector against a real order system, and what happens when that system dies mid-run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kefu.commerce.models import CommerceOrder
from kefu.commerce.sources import hub_of
from kefu.events import types as ev
from kefu.events.models import OutboxEvent
from kefu.integrations.commerce.webhooks import sign
from kefu.runtime import build_runtime
from tests.commerce.fake_shop import FakeShop, FakeShopProcess
from tests.commerce.test_normalizers import load
from tests.conftest import LiveServer, close_runtime, make_settings
from tests.factories import TenantFixture, create_tenant


@pytest.fixture
def kefu_server(sqlite_url: str) -> Iterator[LiveServer]:
    """A Kefu node of our own, whose cache is fresh for zero seconds so every read asks the order system."""
    live = LiveServer(make_settings(sqlite_url)).start()
    hub = hub_of(live.app.state.runtime)
    hub.fresh_seconds, hub.stale_seconds, hub.breaker_cooldown = 0.0, 0.0, 0.5
    yield live
    live.stop()


@pytest.fixture
async def client(kefu_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=kefu_server.url, timeout=15) as c:
        yield c


async def _connect(client: httpx.AsyncClient, tenant: TenantFixture, shop: FakeShop | FakeShopProcess) -> dict:  # type: ignore[type-arg]
    response = await client.post("/api/v1/commerce/connectors", headers=tenant.admin.headers, json={
        "name": "ERP", "kind": "rest", "marketplace": "erp", "webhook_format": "mapped", "config": shop.config()})
    assert response.status_code == 201, response.text
    return response.json()


async def test_lookups_go_through_the_mapping_with_bearer_auth(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shop = FakeShop(auth="bearer")
    try:
        await _connect(client, tenant, shop)
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"phone": "13900000077"})).json()
        assert [v["order"]["order_id"] for v in found["data"]] == ["E1002", "E1001"]
        order = found["data"][1]["order"]
        assert order["marketplace"] == "erp" and order["status"] == "delivered" and order["total_paid"] == "270.00"
        # Order-level discount prorated by line amount: 200 and 100 share 30 → 180 and 90.
        assert [i["paid"] for i in order["items"]] == ["180.00", "90.00"]
        by_tracking = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                        params={"tracking_number": "SF8800000001"})).json()
        assert [v["order"]["order_id"] for v in by_tracking["data"]] == ["E1001"]
        shop.orders["E1001"]["state"], shop.orders["E1001"]["rev"] = "SENT", 4
        live = (await client.get(f"/api/v1/orders/{found['data'][1]['id']}", headers=tenant.agent.headers)).json()
        assert live["view"]["order"]["status"] == "shipped" and live["view"]["freshness"]["source"] == "live"
    finally:
        shop.stop()


async def test_hmac_signed_requests_are_accepted(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shop = FakeShop(auth="hmac")
    try:
        await _connect(client, tenant, shop)
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"email": "erp77@example.com"})).json()
        assert {v["order"]["order_id"] for v in found["data"]} == {"E1001", "E1002"} and not found["degraded"]
    finally:
        shop.stop()


async def test_when_the_order_system_is_killed_mid_run_the_last_known_data_is_served_with_its_age(
        client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shop = FakeShopProcess()  # a process of its own, so it can really be killed
    try:
        connector = await _connect(client, tenant, shop)
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"buyer_id": "u-77"})).json()
        ref = next(v["id"] for v in found["data"] if v["order"]["order_id"] == "E1001")
        version = (await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]["version"]

        # An agent keeps the order open (every read goes to the order system: the node's cache is fresh for 0 s)
        # while the order system is killed with SIGKILL.
        answers: list[tuple[float, float, int, dict[str, Any]]] = []
        done = asyncio.Event()

        async def agent_keeps_reading() -> None:
            while not done.is_set():
                started = time.monotonic()
                response = await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)
                body = response.json()
                answers.append((started, time.monotonic(), response.status_code,
                                body["view"] if response.status_code == 200 else body))
                await asyncio.sleep(0.02)

        reader = asyncio.create_task(agent_keeps_reading())
        deadline = time.monotonic() + 30
        while len(answers) < 3 and time.monotonic() < deadline:  # a few live answers first, however busy the machine
            await asyncio.sleep(0.05)
        killed_at = time.monotonic()
        await asyncio.to_thread(shop.kill)
        await asyncio.sleep(2.0)
        done.set()
        await reader

        assert all(status == 200 for _, _, status, _ in answers), [a for a in answers if a[2] != 200][:1]
        before = [view for _, ended, _, view in answers if ended < killed_at]
        after = [(started, ended, view) for started, ended, _, view in answers if started > killed_at]
        assert before and all(not v["freshness"]["degraded"] and v["freshness"]["source"] == "live" for v in before)
        assert len(after) >= 3
        for started, _, view in after:
            freshness = view["freshness"]
            assert freshness["degraded"] is True and freshness["source"] == "stale_cache"
            # The age is that of the last answer the order system gave, before it died.
            assert freshness["age_seconds"] >= started - killed_at - 0.05
            assert view["order"]["status"] == "delivered" and view["version"] == version
        ages = [view["freshness"]["age_seconds"] for _, _, view in after]
        assert ages == sorted(ages) and ages[-1] > 1.5

        for query in ({"buyer_id": "u-77"}, {"phone": "+8613900000077"}, {"order_number": "E1001"}):
            again = (await client.get("/api/v1/orders", headers=tenant.agent.headers, params=query)).json()
            assert again["degraded"] is True and "E1001" in [v["order"]["order_id"] for v in again["data"]], query
        state = (await client.get(f"/api/v1/commerce/connectors/{connector['id']}", headers=tenant.admin.headers))
        assert state.json()["breaker"] in ("open", "half_open")
        refund = await client.post(f"/api/v1/orders/{ref}/refunds", headers=tenant.supervisor.headers,
                                   json={"lines": [{"line_id": "A", "quantity": 1}]})
        assert refund.status_code == 503 and refund.json()["error"]["code"] == "order_system_unavailable"

        await asyncio.to_thread(shop.restart)  # back on the same port; the breaker lets a trial call through
        await asyncio.sleep(0.6)
        recovered = (await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]
        assert recovered["freshness"]["degraded"] is False and recovered["version"] == version
        refund = await client.post(f"/api/v1/orders/{ref}/refunds", json={"lines": [{"line_id": "A", "quantity": 1}]},
                                   headers={**tenant.supervisor.headers, "Idempotency-Key": "erp-refund-1"})
        assert refund.status_code == 200, refund.text
        assert refund.json()["amount"] == "180.00" and refund.json()["external_ref"] == "R-1"
        assert refund.json()["order"]["order"]["status"] == "partially_refunded"
        again = (await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]["order"]
        assert again["refunded_total"] == "180.00"  # the order system itself says so now
    finally:
        shop.kill()


async def test_a_slow_order_system_is_cut_off_and_the_last_copy_served(kefu_server: LiveServer,
                                                                        client: httpx.AsyncClient,
                                                                        tenant: TenantFixture) -> None:
    # A cool-down longer than the test: once open, the breaker lets nothing through (no trial call).
    hub_of(kefu_server.app.state.runtime).breaker_cooldown = 600.0
    shop = FakeShopProcess()
    try:
        connector = await _connect(client, tenant, shop)
        timeout = shop.config()["timeout"]
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"order_number": "E1001"})).json()
        ref = found["data"][0]["id"]
        await asyncio.to_thread(shop.set_delay, 5.0)  # answers now take 5 s; the connector waits 1 s
        before = len(await asyncio.to_thread(shop.calls))
        timings = []
        for _ in range(6):
            started = time.monotonic()
            view = (await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]
            timings.append(time.monotonic() - started)
            assert view["freshness"]["degraded"] is True and view["order"]["order_id"] == "E1001"
        # Three reads waited for the connector's timeout and opened the breaker; the other three were answered
        # from the stored copy without reaching the slow system at all.
        reached = (await asyncio.to_thread(shop.calls))[before:]
        assert reached == ["GET /api/orders/E1001"] * 3, reached
        state = await client.get(f"/api/v1/commerce/connectors/{connector['id']}", headers=tenant.admin.headers)
        assert state.json()["breaker"] == "open"
        assert max(timings) < 3 * timeout  # generous; what matters: never the 5 s of the slow system
    finally:
        shop.kill()


async def test_amounts_are_exact_and_rounded_to_the_order_currency(client: httpx.AsyncClient,
                                                                   tenant: TenantFixture) -> None:
    shop = FakeShop()  # answers amounts as JSON numbers, written out exactly
    try:
        await _connect(client, tenant, shop)
        big = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                params={"order_number": "E1003"})).json()["data"][0]["order"]
        # 18 significant digits: a float would have made it 1234567890123456.80.
        assert big["total_paid"] == "1234567890123456.78"
        assert [i["paid"] for i in big["items"]] == ["1234567890123456.78"]
        yen = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                params={"order_number": "E1004"})).json()["data"][0]["order"]
        assert yen["currency"] == "JPY" and yen["total_paid"] == "6340" and yen["subtotal"] == "6440"
        assert [i["unit_price"] for i in yen["items"]] == ["1980", "500"]
        # The 100 yen order discount is shared in whole yen (92 + 8), never in sen.
        assert [i["paid"] for i in yen["items"]] == ["5848", "492"]
    finally:
        shop.stop()


async def test_reconciliation_repairs_drift(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shop = FakeShop()
    try:
        connector = await _connect(client, tenant, shop)
        await client.get("/api/v1/orders", headers=tenant.agent.headers, params={"buyer_id": "u-77"})
        shop.orders["E1002"]["state"], shop.orders["E1002"]["rev"] = "SENT", 2  # a change nobody told us about
        shop.orders["E1002"]["parcels"] = [{"carrier": "YTO", "no": "YT5500000001", "status": "in_transit"}]
        result = (await client.post(f"/api/v1/commerce/connectors/{connector['id']}/reconcile",
                                    headers=tenant.admin.headers)).json()
        assert result["checked"] == 2 and result["repaired"] == 1
        shop.stop()  # now only the stored copy can answer
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"tracking_number": "YT5500000001"})).json()
        assert found["degraded"] and [v["order"]["status"] for v in found["data"]] == ["shipped"]
    finally:
        shop.stop()


async def test_reconciliation_does_not_roll_back_a_newer_webhook(client: httpx.AsyncClient,
                                                                 tenant: TenantFixture) -> None:
    shop = FakeShop()
    try:
        connector = await _connect(client, tenant, shop)
        await client.get("/api/v1/orders", headers=tenant.agent.headers, params={"buyer_id": "u-77"})
        # The ERP's webhook says revision 5 (shipped) while its read API still answers revision 1 (paid).
        newer = {**shop.orders["E1002"], "state": "SENT", "rev": 5,
                 "parcels": [{"carrier": "YTO", "no": "YT5500000009", "status": "in_transit"}]}
        raw = json.dumps({"id": "erp-evt-5", "type": "shipment.updated", "created_at": "2026-11-22T08:00:00Z",
                          "data": {"order": newer}}).encode()
        ack = await client.post("/api/v1/commerce/webhooks", params={"connector_id": connector["id"]}, content=raw,
                                headers={"Content-Type": "application/json",
                                         "Kefu-Signature": sign(connector["webhook_secret"], raw)})
        assert ack.status_code == 200 and ack.json()["outcome"] == "applied", ack.text
        result = (await client.post(f"/api/v1/commerce/connectors/{connector['id']}/reconcile",
                                    headers=tenant.admin.headers)).json()
        assert result == {"checked": 2, "repaired": 0, "missing": 0, "failed": 0}
        shop.stop()
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"tracking_number": "YT5500000009"})).json()
        assert [(v["order"]["status"], v["order"]["source_version"]) for v in found["data"]] == [("shipped", 5)]
    finally:
        shop.stop()


@pytest.fixture
def lone_server(fresh_db_url: str) -> Iterator[tuple[LiveServer, str]]:
    """A Kefu node on a database of its own, so its background passes see only this test's orders."""
    live = LiveServer(make_settings(fresh_db_url)).start()
    yield live, fresh_db_url
    live.stop()


async def test_the_reconciliation_worker_repairs_drift_on_its_own(lone_server: tuple[LiveServer, str]) -> None:
    live, url = lone_server
    runtime = build_runtime(make_settings(url))
    shop = FakeShop()
    try:
        tenant = await create_tenant(runtime)
        async with httpx.AsyncClient(base_url=live.url, timeout=15) as client:
            await _connect(client, tenant, shop)
            found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                      params={"buyer_id": "u-77"})).json()
            ref = next(v["id"] for v in found["data"] if v["order"]["order_id"] == "E1002")
            async with runtime.sessionmaker() as session:
                version = (await session.get(CommerceOrder, ref)).version  # type: ignore[union-attr]
            # The order ships and nobody tells Kefu (the webhook was lost).
            shop.orders["E1002"].update(state="SENT", rev=2,
                                        parcels=[{"carrier": "YTO", "no": "YT5500000002", "status": "in_transit"}])
            # The node's own background worker, told to pass often and to check every open order.
            hub = hub_of(live.app.state.runtime)
            hub.reconcile_after, hub.pass_seconds = 0.0, 0.2
            status, deadline = None, time.monotonic() + 15
            while status != "shipped" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                async with runtime.sessionmaker() as session:
                    row = await session.get(CommerceOrder, ref)
                    status, stored_version = row.status, row.version  # type: ignore[union-attr]
            assert status == "shipped" and stored_version == version + 1
            async with runtime.sessionmaker() as session:
                updates = (await session.scalars(select(OutboxEvent).where(
                    OutboxEvent.tenant_id == tenant.id, OutboxEvent.type == ev.ORDER_UPDATED))).all()
            assert [e.data["order_ref"] for e in updates] == [ref]
            hub.pass_seconds = 300.0
            shop.stop()  # only the repaired stored copy can answer now
            parcel = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                       params={"tracking_number": "YT5500000002"})).json()
            assert parcel["degraded"] and [v["order"]["status"] for v in parcel["data"]] == ["shipped"]
    finally:
        shop.stop()
        await close_runtime(runtime)


async def test_a_customers_orders_from_every_marketplace_come_in_one_list(client: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    shop = FakeShop()
    try:
        demo = await client.post("/api/v1/commerce/connectors", headers=tenant.admin.headers, json={
            "name": "Demo shop + Shopify webhooks", "kind": "demo_shop", "webhook_format": "shopify"})
        assert demo.status_code == 201, demo.text
        await _connect(client, tenant, shop)
        shopify = load("shopify", "order_paid_fulfilled.json")["order"]
        raw = json.dumps({"id": "evt-s1", "type": "order.created", "created_at": "2026-11-22T08:00:00Z",
                          "data": {"order": shopify}}).encode()
        ack = await client.post("/api/v1/commerce/webhooks", params={"connector_id": demo.json()["id"]}, content=raw,
                                headers={"Content-Type": "application/json",
                                         "Kefu-Signature": sign(demo.json()["webhook_secret"], raw)})
        assert ack.status_code == 200, ack.text
        # One person, known to the demo shop as c1001, to the ERP by phone, to Shopify by their customer id.
        contact = await client.post("/api/v1/contacts", headers=tenant.agent.headers, json={
            "name": "王小明 Bob", "identities": [{"kind": "external", "value": "c1001"},
                                                 {"kind": "phone", "value": "+8613900000077"},
                                                 {"kind": "marketplace_buyer", "value": "shopify:207119551"}]})
        assert contact.status_code == 201, contact.text
        page = await client.get(f"/api/v1/contacts/{contact.json()['id']}/orders", headers=tenant.agent.headers,
                                params={"limit": 100})
        assert page.status_code == 200, page.text
        views = page.json()["data"]
        assert page.json()["degraded"] is False
        assert {v["order"]["marketplace"] for v in views} == {"demo_shop", "erp", "shopify"}
        numbers = [v["order"]["order_id"] for v in views]
        assert {"E1001", "E1002", "450789469"} <= set(numbers) and len(numbers) == len(set(numbers)) >= 14
        created = [v["order"]["created_at"] for v in views]
        assert created == sorted(created, reverse=True)  # one list, newest first, whatever the marketplace
        # The ERP goes down: its orders come from their stored copies, marked; the other marketplaces are
        # unaffected (one circuit breaker per connector).
        shop.stop()
        page = (await client.get(f"/api/v1/contacts/{contact.json()['id']}/orders", headers=tenant.agent.headers,
                                 params={"limit": 100})).json()
        assert page["degraded"] is True and [v["order"]["order_id"] for v in page["data"]] == numbers
        assert all(v["freshness"]["degraded"] == (v["order"]["marketplace"] == "erp") for v in page["data"])
    finally:
        shop.stop()
