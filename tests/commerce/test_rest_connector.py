"""The generic REST connector against a real order system, and what happens when that system dies mid-run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from kefu.commerce.sources import hub_of
from tests.commerce.fake_shop import FakeShop
from tests.conftest import LiveServer, make_settings
from tests.factories import TenantFixture


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


async def _connect(client: httpx.AsyncClient, tenant: TenantFixture, shop: FakeShop) -> dict:  # type: ignore[type-arg]
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


async def test_when_the_order_system_dies_the_last_known_data_is_served_with_its_age(
        client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shop = FakeShop()
    try:
        connector = await _connect(client, tenant, shop)
        found = (await client.get("/api/v1/orders", headers=tenant.agent.headers,
                                  params={"buyer_id": "u-77"})).json()
        ref = next(v["id"] for v in found["data"] if v["order"]["order_id"] == "E1001")
        version = (await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]["version"]
        shop.stop()  # the order system dies mid-run

        detail = await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)
        assert detail.status_code == 200
        freshness = detail.json()["view"]["freshness"]
        assert freshness["degraded"] is True and freshness["source"] == "stale_cache" and freshness["age_seconds"] > 0
        assert detail.json()["view"]["order"]["status"] == "delivered"
        for query in ({"buyer_id": "u-77"}, {"phone": "+8613900000077"}, {"order_number": "E1001"}):
            again = (await client.get("/api/v1/orders", headers=tenant.agent.headers, params=query)).json()
            assert again["degraded"] is True and "E1001" in [v["order"]["order_id"] for v in again["data"]], query
        state = (await client.get(f"/api/v1/commerce/connectors/{connector['id']}", headers=tenant.admin.headers))
        assert state.json()["breaker"] in ("open", "half_open")
        refund = await client.post(f"/api/v1/orders/{ref}/refunds", headers=tenant.supervisor.headers,
                                   json={"lines": [{"line_id": "A", "quantity": 1}]})
        assert refund.status_code == 503 and refund.json()["error"]["code"] == "order_system_unavailable"

        shop.restart()  # back on the same port; the breaker lets a trial call through after its cool-down
        await asyncio.sleep(0.6)
        recovered = (await client.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]
        assert recovered["freshness"]["degraded"] is False and recovered["version"] == version
        refund = await client.post(f"/api/v1/orders/{ref}/refunds", json={"lines": [{"line_id": "A", "quantity": 1}]},
                                   headers={**tenant.supervisor.headers, "Idempotency-Key": "erp-refund-1"})
        assert refund.status_code == 200, refund.text
        assert refund.json()["amount"] == "180.00" and refund.json()["external_ref"] == "R-1"
        assert refund.json()["order"]["order"]["status"] == "partially_refunded"
        assert shop.orders["E1001"]["refunded"] == "180.00"
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
