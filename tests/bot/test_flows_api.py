"""Flows and bot settings through the API: list, read, edit with If-Match, validation that says what is wrong."""

from __future__ import annotations

import httpx
import pytest
import yaml

from kefu.bot.flows import SKILLS, FlowInvalid, FlowSet, builtin_flows, builtin_sources, parse_flow
from tests.factories import TenantFixture


def test_every_builtin_flow_parses_and_speaks_both_languages() -> None:
    flows = builtin_flows()
    assert {"brand", "track_order", "delivery_estimate", "urge_shipment", "cancel_order", "change_address",
            "return_exchange", "refund_status", "refund_policy", "price_protection", "invoice",
            "promotions"} <= set(flows)
    for flow in flows.values():
        for texts in [flow.title, *flow.replies.values(), *(s.prompt for s in flow.slots)]:
            assert texts.get("zh") and texts.get("en") and texts["zh"] != texts["en"], flow.name
    assert FlowSet().for_intent("track_order").name == "track_order"


def test_every_skill_and_outcome_has_words_for_the_handoff_summary() -> None:
    from kefu.core.i18n import catalogue_files

    for lang in ("zh", "en"):
        texts = catalogue_files(lang)
        for skill in SKILLS.values():
            assert texts.get(f"bot_skill.{skill.name}"), (lang, skill.name)
            for code in (*skill.codes, *skill.failures, "declined"):
                assert texts.get(f"bot_outcome.{code}"), (lang, skill.name, code)
        # What the engine itself records: knowledge answers and the order lookup.
        for skill, codes in (("knowledge", ("answered", "choices", "not_helpful", "helpful", "picked")),
                             ("order_lookup", ("order_system_down",))):
            assert texts.get(f"bot_skill.{skill}") and all(texts.get(f"bot_outcome.{c}") for c in codes), skill


@pytest.mark.parametrize(("change", "path", "words"), [
    (lambda d: d["replies"]["ok"].pop("en"), "replies.ok.en", "missing the en text"),
    (lambda d: d.update(skill="teleport"), "skill", "unknown skill"),
    (lambda d: d["slots"][0].update(type="colour"), "slots[0].type", "must be one of"),
    (lambda d: d["replies"].update(lost={"zh": "丢了", "en": "lost"}), "replies", "not answered by"),
    (lambda d: d["replies"]["ok"].update(zh="订单 {order_number"), "replies.ok.zh", "bad placeholder"),
    (lambda d: d.pop("intents"), "intents", "non-empty list"),
])
def test_a_broken_flow_is_refused_with_the_path_and_the_problem(change, path: str, words: str) -> None:
    document = yaml.safe_load(builtin_sources()["track_order"])
    change(document)
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(yaml.safe_dump(document, allow_unicode=True), expected_name="track_order")
    assert any(p["path"] == path and words in p["problem"] for p in raised.value.problems), raised.value.problems


def test_a_catch_all_option_is_marked_with_a_boolean() -> None:
    document = yaml.safe_load(builtin_sources()["return_exchange"])
    assert parse_flow(yaml.safe_dump(document, allow_unicode=True)).slots[2].options[4]["catch_all"] is True
    document["slots"][2]["options"][4]["catch_all"] = "yes"
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(yaml.safe_dump(document, allow_unicode=True), expected_name="return_exchange")
    assert {"path": "slots[2].options[4].catch_all", "problem": "must be true or false"} in raised.value.problems


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(FlowInvalid) as raised:
        parse_flow("name: x\nintents: [a\nreplies: {}\n")
    assert raised.value.problems[0]["path"].startswith("line ")


async def test_flows_are_listed_edited_with_if_match_and_reverted(http: httpx.AsyncClient,
                                                                  tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    listed = (await http.get("/api/v1/bot/flows", headers=tenant.agent.headers)).json()
    assert {"track_order", "brand"} <= {f["name"] for f in listed["data"]} and "track_order" in listed["skills"]
    flow = await http.get("/api/v1/bot/flows/track_order", headers=admin)
    assert flow.status_code == 200 and flow.json()["origin"] == "builtin" and flow.headers["etag"] == '"0"'
    source = flow.json()["source"].replace("当前状态", "最新状态")

    agent_put = await http.put("/api/v1/bot/flows/track_order", headers=tenant.agent.headers, json={"source": source})
    assert agent_put.status_code == 403
    saved = await http.put("/api/v1/bot/flows/track_order", headers={**admin, "If-Match": '"0"'},
                           json={"source": source})
    assert saved.status_code == 200, saved.text
    assert saved.json()["origin"] == "tenant" and saved.json()["version"] == 1 and "最新状态" in saved.json()["source"]
    stale = await http.put("/api/v1/bot/flows/track_order", headers={**admin, "If-Match": '"0"'},
                           json={"source": source})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"

    broken = await http.put("/api/v1/bot/flows/track_order", headers={**admin, "Accept-Language": "zh"},
                            json={"source": source.replace("skill: track_order", "skill: fly")})
    assert broken.status_code == 422
    error = broken.json()["error"]
    assert error["code"] == "bot_flow_invalid" and "流程无效" in error["message"]
    assert any(p["path"] == "skill" for p in error["details"]["problems"])
    renamed = await http.put("/api/v1/bot/flows/track_order", headers=admin,
                             json={"source": source.replace("name: track_order", "name: other")})
    assert renamed.status_code == 422

    assert (await http.delete("/api/v1/bot/flows/track_order", headers=admin)).status_code == 204
    assert (await http.get("/api/v1/bot/flows/track_order", headers=admin)).json()["origin"] == "builtin"
    assert (await http.delete("/api/v1/bot/flows/track_order", headers=admin)).status_code == 404
    missing = await http.get("/api/v1/bot/flows/no_such_flow", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "bot_flow_not_found"


async def test_a_tenant_flow_is_created_once(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    source = ("name: warranty\nintents: [warranty_repair]\ntitle: {zh: 保修, en: Warranty}\n"
              "replies:\n  default: {zh: 保修请联系品牌售后。, en: Repairs go through the brand's service centre.}\n")
    created = await http.post("/api/v1/bot/flows", headers=admin, json={"source": source})
    assert created.status_code == 201, created.text
    again = await http.post("/api/v1/bot/flows", headers=admin, json={"source": source})
    assert again.status_code == 409 and again.json()["error"]["code"] == "bot_flow_exists"
    builtin = await http.post("/api/v1/bot/flows", headers=admin,
                              json={"source": source.replace("name: warranty", "name: track_order")})
    assert builtin.status_code == 409


async def test_bot_settings_per_inbox(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    path = f"/api/v1/bot/inboxes/{tenant.inbox_id}/settings"
    current = await http.get(path, headers=admin)
    assert current.status_code == 200 and current.json()["enabled"] is False and current.json()["version"] == 0
    saved = await http.put(path, headers={**admin, "If-Match": '"0"'},
                           json={"enabled": True, "handoff": {"anger": 0.5, "vip_level": 2}})
    assert saved.status_code == 200 and saved.json()["enabled"] is True and saved.json()["handoff"]["anger"] == 0.5
    stale = await http.put(path, headers={**admin, "If-Match": '"0"'}, json={"enabled": False})
    assert stale.status_code == 409
    invalid = await http.put(path, headers=admin, json={"handoff": {"anger": 3}})
    assert invalid.status_code == 422
