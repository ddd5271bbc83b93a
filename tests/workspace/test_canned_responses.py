"""Canned responses: shared and personal scopes, unique shortcuts, search, edits, and placeholders."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from kefu.canned import policies
from tests.channels.chat import customer_says, start_session
from tests.factories import TenantFixture

SHIP = {"scope": "shared", "shortcut": "/Ship", "title": "发货时间",
        "body_zh": "{{customer.name}}您好，订单 {{ order.id }} 将在 48 小时内发货。——{{agent.name}}",
        "body_en": "Hi {{customer.name}}, order {{order.id}} ships within 48 hours. {{agent.name}}",
        "tags": ["Shipping", "shipping "]}


async def test_shared_and_personal_responses(http: httpx.AsyncClient, tenant: TenantFixture,
                                             other_tenant: TenantFixture) -> None:
    agent, supervisor = tenant.agent.headers, tenant.supervisor.headers
    refused = await http.post("/api/v1/canned-responses", headers=agent, json=SHIP)
    assert refused.status_code == 403  # sharing with the whole team is for supervisors and admins
    shared = await http.post("/api/v1/canned-responses", headers=supervisor, json=SHIP)
    assert shared.status_code == 201, shared.text
    body = shared.json()
    assert (body["scope"], body["shortcut"], body["tags"], body["owner_id"]) == ("shared", "ship", ["shipping"], None)
    taken = await http.post("/api/v1/canned-responses", headers=tenant.admin.headers, json={**SHIP, "shortcut": "SHIP"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "canned_shortcut_taken"

    mine = await http.post("/api/v1/canned-responses", headers=agent, json={
        "shortcut": "ship", "title": "My shipping text", "body_en": "Shipping soon!"})
    assert mine.status_code == 201 and mine.json()["scope"] == "personal"  # shadows the shared one: allowed
    refund = await http.post("/api/v1/canned-responses", headers=agent, json={
        "shortcut": "refund-status", "title": "退款进度", "body_zh": "退款已提交，1-3 个工作日到账。"})
    assert refund.status_code == 201

    listed = (await http.get("/api/v1/canned-responses", headers=agent, params={"shortcut": "/sh"})).json()["data"]
    assert {r["id"] for r in listed} == {body["id"], mine.json()["id"]}
    assert [r["id"] for r in (await http.get("/api/v1/canned-responses", headers=agent,
                                             params={"q": "工作日"})).json()["data"]] == [refund.json()["id"]]
    assert [r["id"] for r in (await http.get("/api/v1/canned-responses", headers=agent,
                                             params={"tag": "Shipping"})).json()["data"]] == [body["id"]]
    personal = (await http.get("/api/v1/canned-responses", headers=agent, params={"scope": "personal"})).json()
    assert {r["id"] for r in personal["data"]} == {mine.json()["id"], refund.json()["id"]}
    # Someone else's personal response does not exist for a colleague, nor for another tenant.
    colleague = await http.get(f"/api/v1/canned-responses/{mine.json()['id']}", headers=supervisor)
    assert colleague.status_code == 404 and colleague.json()["error"]["code"] == "canned_response_not_found"
    assert (await http.get("/api/v1/canned-responses", headers=other_tenant.admin.headers)).json()["data"] == []

    page = await http.get("/api/v1/canned-responses", headers=agent, params={"limit": 1})
    second = await http.get("/api/v1/canned-responses", headers=agent,
                            params={"limit": 1, "cursor": page.json()["next_cursor"]})
    assert page.json()["data"][0]["id"] != second.json()["data"][0]["id"]


async def test_edit_with_if_match_and_delete(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    agent = tenant.agent.headers
    created = await http.post("/api/v1/canned-responses", headers=agent, json={
        "shortcut": "hello", "title": "Greeting", "body_en": "Hello!"})
    cid = created.json()["id"]
    assert created.headers["etag"] == '"1"'
    edited = await http.patch(f"/api/v1/canned-responses/{cid}", headers={**agent, "If-Match": '"1"'},
                              json={"body_zh": "您好！", "tags": ["greeting"]})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = await http.patch(f"/api/v1/canned-responses/{cid}", headers={**agent, "If-Match": '"1"'},
                             json={"title": "x"})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    empty = await http.patch(f"/api/v1/canned-responses/{cid}", headers=agent, json={"body_zh": "", "body_en": " "})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "canned_body_required"
    bad = await http.post("/api/v1/canned-responses", headers=agent, json={
        "shortcut": "has space", "title": "t", "body_en": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_shortcut"
    shared = await http.post("/api/v1/canned-responses", headers=tenant.admin.headers, json={
        "scope": "shared", "shortcut": "bye", "title": "Bye", "body_en": "Bye!"})
    cannot = await http.delete(f"/api/v1/canned-responses/{shared.json()['id']}", headers=agent)
    assert cannot.status_code == 403
    assert (await http.delete(f"/api/v1/canned-responses/{cid}", headers=agent)).status_code == 204
    assert (await http.get(f"/api/v1/canned-responses/{cid}", headers=agent)).status_code == 404


async def test_render_fills_placeholders_for_a_conversation(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    visitor = await start_session(http, tenant.inbox_id, name="王小明")
    said = await customer_says(http, visitor["visitor_token"], "我的包裹到哪了？")
    shared = (await http.post("/api/v1/canned-responses", headers=tenant.admin.headers, json=SHIP)).json()
    rendered = await http.post(f"/api/v1/canned-responses/{shared['id']}/render", headers=tenant.agent.headers,
                               json={"conversation_id": said["conversation_id"], "locale": "zh",
                                     "values": {"order.id": "SO-1024"}})
    assert rendered.status_code == 200, rendered.text
    text = rendered.json()
    agent_name = (await http.get("/api/v1/auth/me", headers=tenant.agent.headers)).json()["display_name"]
    assert text == {"body": f"王小明您好，订单 SO-1024 将在 48 小时内发货。——{agent_name}", "locale": "zh", "missing": []}
    english = (await http.post(f"/api/v1/canned-responses/{shared['id']}/render", headers=tenant.agent.headers,
                               json={"conversation_id": said["conversation_id"], "locale": "en"})).json()
    assert english["body"].startswith("Hi 王小明, order  ships") and english["missing"] == ["order.id"]
    missing = await http.post(f"/api/v1/canned-responses/{shared['id']}/render", headers=tenant.agent.headers,
                              json={"conversation_id": "conv_01jd0000000000000000000000"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation_not_found"


@given(st.text(max_size=200), st.dictionaries(st.sampled_from(policies.KNOWN_PLACEHOLDERS), st.text(max_size=20)))
def test_rendering_only_replaces_placeholders(template: str, values: dict[str, str]) -> None:
    text, missing = policies.render(template, values)
    if "{{" not in template:
        assert text == template and missing == []
    assert missing == sorted(set(missing))
    assert all(not values.get(key) for key in missing)


def test_shortcut_rules() -> None:
    assert policies.normalise_shortcut("/Ship") == "ship"
    assert policies.normalise_shortcut("退款") == "退款"
    assert policies.normalise_shortcut("a b") is None
    assert policies.normalise_shortcut("x" * 33) is None
    assert policies.normalise_shortcut("/") is None
