"""Orders over REST on the built-in demo shop: lookups, detail with rules, and actions with their safeguards."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from tests.commerce.helpers import demo_order, detail, orders_of, price_protected_candidate
from tests.factories import TenantFixture


async def test_orders_are_found_by_number_phone_email_tracking_and_buyer(http: httpx.AsyncClient,
                                                                          tenant: TenantFixture) -> None:
    shipped = await demo_order(http, tenant, "shipped")
    order = shipped["order"]
    assert shipped["id"].startswith("ord_") and order["buyer"]["buyer_id"] == "c1001"
    tracking = order["shipments"][0]["tracking_number"]
    local_phone = order["buyer"]["phone"].removeprefix("+86")  # customers type it without the country code
    for query in ({"order_number": order["order_id"]}, {"phone": local_phone}, {"email": order["buyer"]["email"].upper()},
                  {"tracking_number": tracking.lower()}, {"buyer_id": "c1001"}):
        found = await orders_of(http, tenant, **query)
        assert shipped["id"] in [v["id"] for v in found], query
    by_number = await orders_of(http, tenant, order_number=order["order_id"])
    assert [v["order"]["order_id"] for v in by_number] == [order["order_id"]]
    money = by_number[0]["order"]["total_paid"]
    assert isinstance(money, str) and Decimal(money) > 0
    assert (await orders_of(http, tenant, order_number="DS999999")) == []
    missing = await http.get("/api/v1/orders", headers=tenant.agent.headers)
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "lookup_key_required"


async def test_a_contacts_orders_come_through_their_identities(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    contact = (await http.post("/api/v1/contacts", headers=tenant.agent.headers, json={
        "name": "c1001", "identities": [{"kind": "external", "value": "c1001"}]})).json()
    response = await http.get(f"/api/v1/contacts/{contact['id']}/orders", headers=tenant.agent.headers,
                              params={"limit": 5})
    assert response.status_code == 200
    page = response.json()
    assert len(page["data"]) == 5 and page["next_cursor"] and page["degraded"] is False
    created = [v["order"]["created_at"] for v in page["data"]]
    assert created == sorted(created, reverse=True)
    rest = (await http.get(f"/api/v1/contacts/{contact['id']}/orders", headers=tenant.agent.headers,
                           params={"limit": 50, "cursor": page["next_cursor"]})).json()
    everything = page["data"] + rest["data"]
    assert len({v["id"] for v in everything}) == len(everything) >= 11
    assert {v["order"]["buyer"]["buyer_id"] for v in everything} == {"c1001"}
    by_email = (await http.post("/api/v1/contacts", headers=tenant.agent.headers, json={
        "name": "by mail", "email": "c1002@demo-shop.example"})).json()
    mailed = (await http.get(f"/api/v1/contacts/{by_email['id']}/orders", headers=tenant.agent.headers)).json()
    assert mailed["data"] and {v["order"]["buyer"]["buyer_id"] for v in mailed["data"]} == {"c1002"}
    # A buyer id names a buyer on one marketplace: Taobao's c1003 is not the demo shop's c1003.
    taobao = (await http.post("/api/v1/contacts", headers=tenant.agent.headers, json={
        "name": "taobao buyer", "identities": [{"kind": "marketplace_buyer", "value": "taobao:c1003"}]})).json()
    assert (await http.get(f"/api/v1/contacts/{taobao['id']}/orders", headers=tenant.agent.headers)).json()["data"] == []
    demo = (await http.post("/api/v1/contacts", headers=tenant.agent.headers, json={
        "name": "demo buyer", "identities": [{"kind": "marketplace_buyer", "value": "demo_shop:c1003"}]})).json()
    theirs = (await http.get(f"/api/v1/contacts/{demo['id']}/orders", headers=tenant.agent.headers)).json()["data"]
    assert theirs and {v["order"]["buyer"]["buyer_id"] for v in theirs} == {"c1003"}


async def test_detail_carries_eligibility_risk_and_an_etag(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    delivered = await demo_order(http, tenant, "delivered")
    response = await detail(http, tenant, delivered["id"])
    assert response.status_code == 200
    body = response.json()
    assert response.headers["etag"] == f'"{body["view"]["version"]}"'
    first = next(r for r in body["returns"] if r["line_id"] == "L1" and r["kind"] == "no_reason")
    assert first["reasons"][0]["zh"] and first["reasons"][0]["en"]
    assert body["refundable"] == body["view"]["order"]["total_paid"]
    unknown = await detail(http, tenant, "ord_01jd0000000000000000000000")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "order_not_found"


async def test_refunds_need_a_supervisor_respect_if_match_and_replay_by_idempotency_key(
        http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    view = await demo_order(http, tenant, "delivered")
    ref, version = view["id"], (await detail(http, tenant, view["id"])).json()["view"]["version"]
    body = {"lines": [{"line_id": "L1", "quantity": 1}], "reason": "no_reason"}
    agent = await http.post(f"/api/v1/orders/{ref}/refunds", headers=tenant.agent.headers, json=body)
    assert agent.status_code == 403
    quote = (await http.post(f"/api/v1/orders/{ref}/refund-quotes", headers=tenant.agent.headers, json=body)).json()
    headers = {**tenant.supervisor.headers, "If-Match": f'"{version}"', "Idempotency-Key": "refund-1"}
    done = await http.post(f"/api/v1/orders/{ref}/refunds", headers=headers, json=body)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["status"] == "succeeded" and result["amount"] == quote["total"]
    assert result["order"]["order"]["refunded_total"] == quote["total"]
    again = await http.post(f"/api/v1/orders/{ref}/refunds", headers=headers, json=body)
    assert again.status_code == 200 and again.json()["id"] == result["id"]
    stale = await http.post(f"/api/v1/orders/{ref}/refunds", json=body, headers={
        **tenant.supervisor.headers, "If-Match": f'"{version}"', "Idempotency-Key": "refund-2"})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    after = (await detail(http, tenant, ref)).json()
    assert after["view"]["order"]["refunded_total"] == quote["total"]
    audit = (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers, params={"target_id": ref})).json()
    assert [e["action"] for e in audit["data"]] == ["order.request_refund"]


async def test_two_agents_racing_on_one_version_refund_once(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    view = await demo_order(http, tenant, "delivered")
    version = (await detail(http, tenant, view["id"])).json()["view"]["version"]
    body = {"lines": [{"line_id": "L1", "quantity": 1}]}

    async def refund(key: str) -> httpx.Response:
        return await http.post(f"/api/v1/orders/{view['id']}/refunds", json=body, headers={
            **tenant.supervisor.headers, "If-Match": f'"{version}"', "Idempotency-Key": key})

    answers = await asyncio.gather(refund("a"), refund("b"))
    assert sorted(r.status_code for r in answers) == [200, 409]
    order = (await detail(http, tenant, view["id"])).json()["view"]["order"]
    assert len(order["refunds"]) == 1


async def test_bad_refunds_are_refused_and_change_nothing(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    view = await demo_order(http, tenant, "delivered")
    ref = view["id"]
    before = (await detail(http, tenant, ref)).json()["view"]
    sup = tenant.supervisor.headers
    item = before["order"]["items"][0]
    cases = [
        ({"lines": [{"line_id": "L1", "quantity": item["quantity"] + 1}]}, 409, "refund_exceeds_paid"),
        ({"lines": [{"line_id": "L1", "quantity": 1}], "amount": "99999.00"}, 409, "refund_exceeds_paid"),
        ({"lines": [{"line_id": "L1", "quantity": 1}], "currency": "USD"}, 422, "currency_mismatch"),
        ({"lines": [{"line_id": "L9", "quantity": 1}]}, 422, "unknown_order_line"),
        ({"lines": [{"line_id": "L1", "quantity": -1}]}, 422, "validation_error"),
        ({"lines": []}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        response = await http.post(f"/api/v1/orders/{ref}/refunds", headers=sup, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    zh = await http.post(f"/api/v1/orders/{ref}/refunds", headers={**sup, "Accept-Language": "zh"},
                         json=cases[0][0])
    assert "退款" in zh.json()["error"]["message"]
    after = (await detail(http, tenant, ref)).json()["view"]
    assert after["order"] == before["order"]


async def test_cancel_and_address_change_only_before_shipping(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    shipped = await demo_order(http, tenant, "shipped")
    refused = await http.post(f"/api/v1/orders/{shipped['id']}/cancel", headers=tenant.agent.headers, json={})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "order_already_shipped"
    paid = await demo_order(http, tenant, "paid")
    moved = await http.post(f"/api/v1/orders/{paid['id']}/change-address", headers=tenant.agent.headers, json={
        "address": {"name": "王小明", "phone": "+8613800138000", "country": "CN", "city": "北京市", "line1": "长安街 1 号"}})
    assert moved.status_code == 200, moved.text
    flags = {f["code"] for f in (await detail(http, tenant, paid["id"])).json()["risk"]}
    assert "address_changed_after_payment" in flags
    cancelled = await http.post(f"/api/v1/orders/{paid['id']}/cancel", headers=tenant.agent.headers,
                                json={"reason": "customer_request"})
    assert cancelled.status_code == 200 and cancelled.json()["order"]["order"]["status"] == "cancelled"
    assert cancelled.json()["amount"] == paid["order"]["total_paid"]


async def test_returns_follow_the_rules(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    delivered = await demo_order(http, tenant, "delivered")
    made = await http.post(f"/api/v1/orders/{delivered['id']}/returns", headers=tenant.agent.headers,
                           json={"kind": "exchange", "reason": "no_reason", "lines": [{"line_id": "L1", "quantity": 1}]})
    assert made.status_code == 200, made.text
    assert made.json()["order"]["order"]["returns"][-1]["kind"] == "exchange"
    old = await demo_order(http, tenant, "completed")
    late = await http.post(f"/api/v1/orders/{old['id']}/returns", headers=tenant.agent.headers,
                           json={"lines": [{"line_id": "L1", "quantity": 1}]})
    assert late.status_code == 409 and late.json()["error"]["code"] == "return_not_eligible"
    assert late.json()["error"]["details"]["reasons"][0]["code"] == "window_passed"


async def test_price_protection_is_granted_once(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    view, quote = await price_protected_candidate(http, tenant)
    claim = await http.post(f"/api/v1/orders/{view['id']}/price-protection-claims", headers=tenant.supervisor.headers,
                            json={"line_id": "L1"})
    assert claim.status_code == 200 and claim.json()["amount"] == quote["amount"]
    twice = await http.post(f"/api/v1/orders/{view['id']}/price-protection-claims", headers=tenant.supervisor.headers,
                            json={"line_id": "L1"})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "price_protection_not_eligible"
    reasons = twice.json()["error"]["details"]["reasons"]
    assert reasons[0]["code"] == "price_already_protected" and reasons[0]["zh"] and reasons[0]["en"]
    requote = (await http.post(f"/api/v1/orders/{view['id']}/price-protection-quotes", headers=tenant.agent.headers,
                               json={"line_id": "L1"})).json()
    assert requote["eligible"] is False and requote["amount"] == "0"


async def test_every_action_needs_its_role_and_is_audited(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    key = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                          json={"name": "order lookups", "scopes": ["orders:read"]})
    assert key.status_code == 201, key.text
    reader = {"Authorization": f"Bearer {key.json()['token']}"}
    paid = await demo_order(http, tenant, "paid")
    delivered = await demo_order(http, tenant, "delivered")
    protected, _ = await price_protected_candidate(http, tenant, exclude=(paid["id"], delivered["id"]))
    address = {"address": {"name": "李娜", "phone": "+8613800138001", "country": "CN", "city": "上海市",
                           "line1": "世纪大道 1 号"}}
    # (order, action, body, the least role allowed, the audit action)
    actions = [
        (paid, "change-address", address, tenant.agent, "order.change_address"),
        (delivered, "returns", {"lines": [{"line_id": "L1", "quantity": 1}]}, tenant.agent, "order.create_return"),
        (delivered, "refunds", {"lines": [{"line_id": "L1", "quantity": 1}]}, tenant.supervisor,
         "order.request_refund"),
        (protected, "price-protection-claims", {"line_id": "L1"}, tenant.supervisor, "order.claim_price_protection"),
        (paid, "cancel", {"reason": "customer_request"}, tenant.agent, "order.cancel"),
    ]
    for view, action, body, allowed, audited in actions:
        url = f"/api/v1/orders/{view['id']}/{action}"
        before = (await detail(http, tenant, view["id"])).json()["view"]
        denied = await http.post(url, headers=reader, json=body)
        assert (denied.status_code, denied.json()["error"]["code"]) == (403, "insufficient_scope"), action
        if allowed is tenant.supervisor:
            refused = await http.post(url, headers=tenant.agent.headers, json=body)
            assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden"), action
        unchanged = (await detail(http, tenant, view["id"])).json()["view"]
        assert (unchanged["version"], unchanged["order"]) == (before["version"], before["order"]), action
        done = await http.post(url, json=body, headers={**allowed.headers, "Idempotency-Key": f"audit-{action}"})
        assert done.status_code == 200 and done.json()["status"] == "succeeded", (action, done.text)
        entries = (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers,
                                  params={"target_id": view["id"], "action": audited})).json()["data"]
        mine = [e for e in entries if e["action"] == audited]
        assert len(mine) == 1, (action, entries)
        assert mine[0]["actor_id"] == allowed.id and mine[0]["details"]["status"] == "succeeded"
        assert mine[0]["details"]["idempotency_key"] == f"audit-{action}"
        assert mine[0]["details"]["action_id"] == done.json()["id"]


async def test_rules_are_per_tenant_and_change_the_verdicts(http: httpx.AsyncClient, tenant: TenantFixture,
                                                             other_tenant: TenantFixture) -> None:
    rules = await http.get("/api/v1/commerce/rules", headers=tenant.agent.headers)
    assert rules.headers["etag"] == '"0"' and rules.json()["no_reason_return_days"] == 7
    denied = await http.put("/api/v1/commerce/rules", headers=tenant.agent.headers, json=rules.json())
    assert denied.status_code == 403
    strict = {**rules.json(), "no_reason_return_days": 0, "category_return_days": {}}
    saved = await http.put("/api/v1/commerce/rules", headers={**tenant.admin.headers, "If-Match": '"0"'}, json=strict)
    assert saved.status_code == 200 and saved.headers["etag"] == '"1"'
    stale = await http.put("/api/v1/commerce/rules", headers={**tenant.admin.headers, "If-Match": '"0"'}, json=strict)
    assert stale.status_code == 409
    delivered = await demo_order(http, tenant, "delivered")
    verdict = next(r for r in (await detail(http, tenant, delivered["id"])).json()["returns"]
                   if r["line_id"] == "L1" and r["kind"] == "no_reason")
    assert not verdict["eligible"] and verdict["reasons"][0]["code"] == "window_passed"
    other = await demo_order(http, other_tenant, "delivered")
    verdict = next(r for r in (await detail(http, other_tenant, other["id"])).json()["returns"]
                   if r["line_id"] == "L1" and r["kind"] == "no_reason")
    assert verdict["eligible"]
