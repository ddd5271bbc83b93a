"""Language understanding over REST: analyse, custom intents and examples, retraining without restart."""

from __future__ import annotations

import httpx

from kefu.nlp import service as nlp_service
from kefu.nlp.pipeline import registry
from tests.factories import TenantFixture

GIFT_EXAMPLES = [
    "能帮我包装成礼物吗", "可以礼品包装吗", "送人的 帮我包一下礼盒", "需要礼物包装", "能不能加个礼品袋和贺卡",
    "礼盒包装多少钱", "包装成生日礼物", "can you gift wrap it", "do you offer gift wrapping",
    "please wrap it as a present", "I'd like gift wrapping with a card", "is gift packaging available",
    "wrap this as a birthday gift please", "add gift wrap to my order",
]


async def test_analyse_returns_the_contract(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await http.post("/api/v1/nlu/analyse", headers=tenant.agent.headers, json={
        "text": "你们到底什么时候发货!!! 订单2026112212345678 昨天就该到了", "now": "2026-11-22T08:00:00Z"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["intent"] == "urge_shipment" and body["language"] == "zh"
    assert body["emotion"]["label"] == "anger" and body["sentiment"]["polarity"] == "negative"
    assert {"type": "order_number", "value": "2026112212345678"}.items() <= body["entities"][0].items()
    assert {e["type"]: e["normalized"] for e in body["entities"]}["date"] == "2026-11-21"

    full = await http.post("/api/v1/nlu/analyse", headers=tenant.agent.headers, json={
        "text": "where is my air fryer?", "full": True, "products": [{"sku": "AF-1", "name": "air fryer"}]})
    assert full.status_code == 200
    assert full.json()["intents"][0]["intent"] == full.json()["intent"] == "track_order"
    assert [e["normalized"] for e in full.json()["entities"]] == ["AF-1"]
    assert set(full.json()["emotion"]["scores"]) == {"anger", "anxiety", "sadness", "joy", "surprise", "neutral"}


async def test_batch_and_bad_input(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    texts = ["", "😀", "\u0001\u0002\u007f", "x" * 20_000, "ignore previous instructions", "我要退货"]
    r = await http.post("/api/v1/nlu/analyse/batch", headers=tenant.agent.headers, json={"texts": texts})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == len(texts)
    assert data[3]["truncated"] is True and "2000 of 20000" in data[3]["note"] and len(data[3]["text"]) == 2000
    assert data[0]["intent"] == "out_of_scope" and data[-1]["intent"] == "return_or_exchange"
    zh = await http.post("/api/v1/nlu/analyse", headers={**tenant.agent.headers, "Accept-Language": "zh"},
                         json={"text": "订单" * 3000})
    assert zh.json()["truncated"] is True and "截取前 2000 个字符" in zh.json()["note"]
    too_many = await http.post("/api/v1/nlu/analyse/batch", headers=tenant.agent.headers,
                               json={"texts": ["a"] * 1001})
    assert too_many.status_code == 422


async def test_scopes(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    denied = await http.post("/api/v1/nlu/intents", headers=tenant.agent.headers,
                             json={"name": "gift_wrapping", "examples": ["x"]})
    assert denied.status_code == 403
    assert (await http.post("/api/v1/nlu/analyse", json={"text": "hi"})).status_code == 401


async def test_custom_intent_retrained_without_restart(
    http: httpx.AsyncClient, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    admin = tenant.admin.headers
    created = await http.post("/api/v1/nlu/intents", headers=admin, json={
        "name": "gift_wrapping", "description": "gift wrap requests", "examples": GIFT_EXAMPLES[:8]})
    assert created.status_code == 201, created.text
    intent = created.json()
    assert intent["builtin"] is False and intent["example_count"] == 8
    more = await http.post(f"/api/v1/nlu/intents/{intent['id']}/examples", headers=admin,
                           json={"texts": [*GIFT_EXAMPLES[8:], GIFT_EXAMPLES[0], "   "]})
    assert more.status_code == 201 and len(more.json()["data"]) == len(GIFT_EXAMPLES) - 8  # dupes/blank skipped
    tuned = await http.post("/api/v1/nlu/examples", headers=admin,
                            json={"intent": "track_order", "texts": ["my parcel went walkabout"]})
    assert tuned.status_code == 201

    listed = (await http.get("/api/v1/nlu/intents", headers=admin)).json()["data"]
    names = [i["name"] for i in listed]
    assert names[:39] == list(nlp_service.DEFAULT_INTENTS) and names[-1] == "gift_wrapping"
    assert {i["name"]: i["example_count"] for i in listed}["track_order"] == 1

    question = {"text": "could you gift wrap the scarf for my mum"}
    before = (await http.post("/api/v1/nlu/analyse", headers=admin, json=question)).json()
    assert before["intent"] != "gift_wrapping"

    model = await http.post("/api/v1/nlu/model/retrain", headers=admin)
    assert model.status_code == 200, model.text
    assert model.json()["version"] == 1 and model.json()["loaded_version"] == 1
    assert model.json()["example_count"] == len(GIFT_EXAMPLES) + 1 and model.json()["custom_intents"] == 1
    after = (await http.post("/api/v1/nlu/analyse", headers=admin, json=question)).json()
    assert after["intent"] == "gift_wrapping", after
    # The defaults still work in the tenant's model, and other tenants never see its intents.
    assert (await http.post("/api/v1/nlu/analyse", headers=admin, json={"text": "我的快递到哪了"})).json()[
        "intent"] == "track_order"
    theirs = (await http.post("/api/v1/nlu/analyse", headers=other_tenant.admin.headers, json=question)).json()
    assert theirs["intent"] != "gift_wrapping"

    # A node that restarted (or never trained this tenant) notices the version and retrains from the database.
    registry.forget(tenant.id)
    nlp_service.forget_checks(tenant.id)
    again = (await http.post("/api/v1/nlu/analyse", headers=admin, json=question)).json()
    assert again["intent"] == "gift_wrapping"

    # Deleting the intent takes its examples; the next retrain drops it.
    assert (await http.delete(f"/api/v1/nlu/intents/{intent['id']}", headers=admin)).status_code == 204
    assert (await http.get(f"/api/v1/nlu/intents/{intent['id']}", headers=admin)).status_code == 404
    assert (await http.get("/api/v1/nlu/examples", headers=admin)).json()["data"][0]["intent"] == "track_order"


async def test_custom_intent_errors(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    admin = {**tenant.admin.headers, "Accept-Language": "zh"}
    reserved = await http.post("/api/v1/nlu/intents", headers=admin, json={"name": "track_order"})
    assert reserved.status_code == 422 and reserved.json()["error"]["code"] == "nlu_reserved_intent"
    assert "默认意图" in reserved.json()["error"]["message"]
    ok = await http.post("/api/v1/nlu/intents", headers=admin, json={"name": "vip_lounge"})
    assert ok.status_code == 201
    dup = await http.post("/api/v1/nlu/intents", headers=admin, json={"name": "vip_lounge"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "nlu_intent_exists"
    unknown = await http.post("/api/v1/nlu/examples", headers=admin, json={"intent": "no_such", "texts": ["x"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "nlu_unknown_intent"
    bad_name = await http.post("/api/v1/nlu/intents", headers=admin, json={"name": "Bad Name"})
    assert bad_name.status_code == 422


async def test_order_patterns_per_tenant(http: httpx.AsyncClient, tenant: TenantFixture,
                                         other_tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    for regex in ["([", r"(\d+)+", ".*", r"(a)(b)\d"]:
        refused = await http.post("/api/v1/nlu/order-patterns", headers=admin,
                                  json={"name": "bad", "regex": regex, "marketplace": "x"})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "nlu_invalid_pattern", regex
    created = await http.post("/api/v1/nlu/order-patterns", headers=admin,
                              json={"name": "my_shop", "regex": r"MS-\d{8}", "marketplace": "own_shop"})
    assert created.status_code == 201, created.text
    assert (await http.post("/api/v1/nlu/order-patterns", headers=admin, json={
        "name": "my_shop", "regex": r"MS-\d{8}", "marketplace": "own_shop"})).status_code == 409
    assert (await http.post("/api/v1/nlu/model/retrain", headers=admin)).status_code == 200
    text = {"text": "where is MS-20261122"}
    mine = (await http.post("/api/v1/nlu/analyse", headers=admin, json=text)).json()["entities"]
    assert [(e["type"], e["attributes"]["marketplace"]) for e in mine] == [("order_number", "own_shop")]
    theirs = (await http.post("/api/v1/nlu/analyse", headers=other_tenant.admin.headers, json=text)).json()
    assert theirs["entities"] == []
    listed = (await http.get("/api/v1/nlu/order-patterns", headers=admin)).json()["data"]
    assert [p["name"] for p in listed] == ["my_shop"]
