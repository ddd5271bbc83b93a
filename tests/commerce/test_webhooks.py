"""Order webhooks: signed, stored before acknowledged, idempotent by event id, out-of-order safe, bad input refused."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from kefu.commerce.models import CommerceOrder, CommerceWebhookEvent
from kefu.integrations.commerce.webhooks import sign
from kefu.runtime import Runtime
from tests.commerce.test_normalizers import load
from tests.factories import TenantFixture


async def _connector(http: httpx.AsyncClient, tenant: TenantFixture, fmt: str = "shopify") -> dict[str, Any]:
    response = await http.post("/api/v1/commerce/connectors", headers=tenant.admin.headers, json={
        "name": f"{fmt} webhooks", "kind": "demo_shop", "webhook_format": fmt})
    assert response.status_code == 201, response.text
    return response.json()


async def _send(http: httpx.AsyncClient, connector: dict[str, Any], event: dict[str, Any], *,
                secret: str | None = None, body: bytes | None = None, ts: int | None = None) -> httpx.Response:
    raw = body if body is not None else json.dumps(event).encode()
    return await http.post("/api/v1/commerce/webhooks", params={"connector_id": connector["id"]}, content=raw,
                           headers={"Content-Type": "application/json",
                                    "Kefu-Signature": sign(secret or connector["webhook_secret"], raw, ts)})


def _event(event_id: str, order: dict[str, Any], kind: str = "order.updated") -> dict[str, Any]:
    return {"id": event_id, "type": kind, "created_at": "2026-11-22T08:00:00Z", "data": {"order": order}}


async def _stored(runtime: Runtime, tenant: TenantFixture) -> tuple[int, int]:
    """How many orders and webhook events are stored for the tenant."""
    async with runtime.sessionmaker() as session:
        orders = await session.scalar(select(func.count()).select_from(CommerceOrder)
                                      .where(CommerceOrder.tenant_id == tenant.id))
        events = await session.scalar(select(func.count()).select_from(CommerceWebhookEvent)
                                      .where(CommerceWebhookEvent.tenant_id == tenant.id))
    return int(orders or 0), int(events or 0)


async def test_a_signed_shopify_webhook_is_stored_once_and_found(http: httpx.AsyncClient, tenant: TenantFixture,
                                                                  runtime: Runtime) -> None:
    connector = await _connector(http, tenant)
    order = load("shopify", "order_paid_fulfilled.json")["order"]
    first = await _send(http, connector, _event("evt-1", order))
    assert first.status_code == 200, first.text
    ack = first.json()
    assert ack["outcome"] == "applied" and ack["duplicate"] is False and ack["order_ref"].startswith("ord_")
    # Acknowledged means committed: the event and the order are in the database when the answer arrives.
    async with runtime.sessionmaker() as session:
        event = await session.get(CommerceWebhookEvent, ack["id"])
        stored = await session.get(CommerceOrder, ack["order_ref"])
    assert event is not None and event.event_id == "evt-1" and event.payload["data"]["order"]["id"] == order["id"]
    assert stored is not None and stored.status == "shipped"
    # A redelivery (even with a body that differs) answers like the first delivery and applies nothing.
    changed = {**order, "financial_status": "refunded", "updated_at": "2026-11-20T08:00:00-05:00"}
    again = await _send(http, connector, _event("evt-1", changed))
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["id"] == ack["id"]
    assert await _stored(runtime, tenant) == (1, 1)
    async with runtime.sessionmaker() as session:
        after = await session.get(CommerceOrder, ack["order_ref"])
    assert after is not None and (after.version, after.data_hash) == (stored.version, stored.data_hash)
    # The connector's source (the demo shop) does not know this order: the webhook copy answers, marked degraded.
    detail = (await http.get(f"/api/v1/orders/{ack['order_ref']}", headers=tenant.agent.headers)).json()
    assert detail["view"]["order"]["order_id"] == "450789469"
    assert detail["view"]["order"]["shipments"][0]["tracking_number"] == "1Z2345"
    found = (await http.get("/api/v1/orders", headers=tenant.agent.headers, params={"tracking_number": "1Z2345"})).json()
    assert [v["id"] for v in found["data"]] == [ack["order_ref"]]


async def test_out_of_order_events_do_not_roll_an_order_back(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    connector = await _connector(http, tenant)
    newer = load("shopify", "order_partially_refunded.json")
    older = json.loads(json.dumps(newer))
    older.update(financial_status="paid", updated_at="2026-11-02T12:00:00Z", refunds=[])
    assert (await _send(http, connector, _event("evt-new", newer))).json()["outcome"] == "applied"
    late = await _send(http, connector, _event("evt-old", older))
    assert late.status_code == 200 and late.json()["outcome"] == "stale"
    detail = (await http.get(f"/api/v1/orders/{late.json()['order_ref']}", headers=tenant.agent.headers)).json()
    assert detail["view"]["order"]["status"] == "partially_refunded"


async def test_the_source_version_decides_over_arrival_order_and_timestamps(http: httpx.AsyncClient,
                                                                             tenant: TenantFixture) -> None:
    connector = await _connector(http, tenant, "canonical")

    def revision(version: int, status: str, updated_at: str) -> dict[str, Any]:
        return {"order_id": "V1", "marketplace": "shop", "status": status, "currency": "CNY",
                "created_at": "2026-11-20T00:00:00Z", "updated_at": updated_at, "source_version": version,
                "subtotal": "100.00", "total_paid": "100.00",
                "items": [{"line_id": "L1", "sku": "S", "title": "t", "quantity": 1, "unit_price": "100.00",
                           "paid": "100.00"}]}

    shipped = await _send(http, connector, _event("v-2", revision(2, "shipped", "2026-11-21T00:00:00Z")))
    ref = shipped.json()["order_ref"]
    # Revision 1 arrives late, with a later clock (the sender's clocks disagree): the revision counter wins.
    late = await _send(http, connector, _event("v-1", revision(1, "paid", "2026-11-21T05:00:00Z")))
    assert late.status_code == 200 and late.json()["outcome"] == "stale"
    order = (await http.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]["order"]
    assert order["status"] == "shipped" and order["source_version"] == 2
    delivered = await _send(http, connector, _event("v-3", revision(3, "delivered", "2026-11-21T01:00:00Z"),
                                                    kind="shipment.updated"))
    assert delivered.json()["outcome"] == "applied"
    order = (await http.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]["order"]
    assert order["status"] == "delivered" and order["source_version"] == 3


async def test_refused_webhooks_leave_a_stored_order_as_it_was(http: httpx.AsyncClient, tenant: TenantFixture,
                                                               runtime: Runtime) -> None:
    connector = await _connector(http, tenant)
    order = load("shopify", "order_paid_fulfilled.json")["order"]
    ref = (await _send(http, connector, _event("evt-ok", order))).json()["order_ref"]
    async with runtime.sessionmaker() as session:
        before = await session.get(CommerceOrder, ref)
    assert before is not None
    newer = {**order, "financial_status": "refunded", "updated_at": "2026-11-20T08:00:00-05:00"}
    negative = json.loads(json.dumps(newer))
    negative["line_items"][0]["quantity"] = -1
    attempts = [
        await http.post("/api/v1/commerce/webhooks", params={"connector_id": connector["id"]},
                        content=json.dumps(_event("evt-a", newer)).encode()),  # unsigned
        await _send(http, connector, _event("evt-b", newer), secret="guessed"),  # signed with the wrong secret
        await _send(http, connector, _event("evt-c", negative)),  # signed, but a negative quantity
        await _send(http, connector, {}, body=json.dumps(_event("evt-d", newer)).encode()[:-5]),  # cut short
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in attempts] == [
        (401, "invalid_webhook_signature"), (401, "invalid_webhook_signature"), (422, "invalid_order_payload"),
        (422, "invalid_webhook_payload")]
    assert await _stored(runtime, tenant) == (1, 1)
    async with runtime.sessionmaker() as session:
        after = await session.get(CommerceOrder, ref)
    assert after is not None and (after.version, after.data_hash, after.status) == (
        before.version, before.data_hash, before.status)
    shown = (await http.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)).json()["view"]["order"]
    assert shown["status"] == "shipped" and shown["refunds"] == []


async def test_bad_webhooks_are_refused_and_store_nothing(http: httpx.AsyncClient, tenant: TenantFixture,
                                                          runtime: Runtime) -> None:
    connector = await _connector(http, tenant)
    order = load("shopify", "order_paid_fulfilled.json")["order"]
    good = json.dumps(_event("evt-x", order)).encode()
    unsigned = await http.post("/api/v1/commerce/webhooks", params={"connector_id": connector["id"]}, content=good)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "invalid_webhook_signature"
    wrong = await _send(http, connector, {}, body=good, secret="not-the-secret")
    assert wrong.status_code == 401
    old = await _send(http, connector, {}, body=good, ts=int(time.time()) - 3600)
    assert old.status_code == 401 and old.json()["error"]["details"]["reason"] == "timestamp_out_of_tolerance"
    nobody = await http.post("/api/v1/commerce/webhooks", params={"connector_id": "ccn_01jd0000000000000000000000"},
                             content=good, headers={"Kefu-Signature": sign("x", good)})
    assert nobody.status_code == 401 and nobody.json()["error"]["code"] == "invalid_webhook_signature"
    negative = json.loads(json.dumps(order))
    negative["line_items"][0]["quantity"] = -2
    no_total = {k: v for k, v in order.items() if k != "total_price"}
    cases = [
        (b"{not json", "invalid_webhook_payload"),
        (json.dumps({"id": "e", "type": "order.exploded", "data": {"order": order}}).encode(), "invalid_webhook_payload"),
        (json.dumps({"type": "order.updated", "data": {"order": order}}).encode(), "invalid_webhook_payload"),
        (json.dumps(_event("evt-neg", negative)).encode(), "invalid_order_payload"),
        (json.dumps(_event("evt-nototal", no_total)).encode(), "invalid_order_payload"),
    ]
    for body, code in cases:
        response = await _send(http, connector, {}, body=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == code, body[:60]
    assert await _stored(runtime, tenant) == (0, 0)


async def test_overpaid_orders_and_bad_currencies_are_refused(http: httpx.AsyncClient, tenant: TenantFixture,
                                                             runtime: Runtime) -> None:
    connector = await _connector(http, tenant, "canonical")
    canonical = {"order_id": "W1", "marketplace": "shop", "status": "paid", "currency": "CNY",
                 "created_at": "2026-11-20T00:00:00Z", "subtotal": "100.00", "total_paid": "100.00",
                 "items": [{"line_id": "L1", "sku": "S", "title": "t", "quantity": 1, "unit_price": "100.00",
                            "paid": "100.00", "refunded_amount": "150.00"}]}
    over = await _send(http, connector, _event("evt-over", canonical))
    assert over.status_code == 422 and over.json()["error"]["details"]["problems"] == ["over_refunded:L1"]
    canonical["items"][0]["refunded_amount"] = "0"
    canonical["currency"] = "C"
    bad_currency = await _send(http, connector, _event("evt-cur", canonical))
    assert bad_currency.status_code == 422 and bad_currency.json()["error"]["code"] == "invalid_order_payload"
    assert await _stored(runtime, tenant) == (0, 0)


async def test_webhook_amounts_are_exact_and_rounded_to_the_order_currency(http: httpx.AsyncClient,
                                                                           tenant: TenantFixture) -> None:
    connector = await _connector(http, tenant)  # Shopify sends amounts as JSON numbers here

    def body(event_id: str, order: str) -> bytes:
        return (f'{{"id":"{event_id}","type":"order.created","created_at":"2026-11-22T08:00:00Z",'
                f'"data":{{"order":{order}}}}}').encode()

    big = body("evt-big", '{"id":9001,"currency":"CNY","financial_status":"paid","created_at":"2026-11-20T00:00:00Z",'
                          '"total_price":1234567890123456.78,"line_items":[{"id":1,"quantity":1,'
                          '"price":1234567890123456.78,"sku":"BIG","name":"big"}]}')
    yen = body("evt-yen", '{"id":9002,"currency":"JPY","financial_status":"paid","created_at":"2026-11-20T00:00:00Z",'
                          '"total_price":2980,"total_discounts":20,"line_items":['
                          '{"id":1,"quantity":1,"price":1000,"sku":"TEA","name":"tea"},'
                          '{"id":2,"quantity":1,"price":2000,"sku":"CUP","name":"cup"}]}')
    shown = []
    for raw in (big, yen):
        ack = await _send(http, connector, {}, body=raw)
        assert ack.status_code == 200, ack.text
        detail = await http.get(f"/api/v1/orders/{ack.json()['order_ref']}", headers=tenant.agent.headers)
        shown.append(detail.json()["view"]["order"])
    # 18 significant digits survive (a float would have stored 1234567890123456.80).
    assert shown[0]["total_paid"] == "1234567890123456.78" and shown[0]["items"][0]["paid"] == "1234567890123456.78"
    # Yen has no minor unit: the 20 yen discount is shared in whole yen and nothing is written with decimals.
    assert shown[1]["currency"] == "JPY" and shown[1]["total_paid"] == "2980"
    assert [(i["unit_price"], i["paid"]) for i in shown[1]["items"]] == [("1000", "993"), ("2000", "1987")]
