"""The agent inbox: filters, last-activity order, unread counts, the contact's whole timeline, widget look."""

from __future__ import annotations

import httpx

from tests.channels.chat import agent_says, bearer, customer_says, start_session
from tests.factories import TenantFixture


async def _ids(http: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[str]:
    response = await http.get("/api/v1/conversations", headers=headers, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]]


async def test_filters_and_last_activity_order(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    agent = tenant.agent.headers
    a = await start_session(http, tenant.inbox_id)
    b = await start_session(http, tenant.inbox_id)
    c = await start_session(http, tenant.inbox_id)
    conv_a = (await customer_says(http, a["visitor_token"], "我要退货 order SO-77"))["conversation_id"]
    conv_b = (await customer_says(http, b["visitor_token"], "Where is my parcel?"))["conversation_id"]
    conv_c = (await customer_says(http, c["visitor_token"], "发票怎么开"))["conversation_id"]
    await agent_says(http, agent, conv_a, "好的")  # the first agent to answer takes it (or routing assigned it)
    await http.put(f"/api/v1/conversations/{conv_b}/tags/VIP", headers=agent)
    await agent_says(http, agent, conv_c, "internal: refund risk", private=True)
    await customer_says(http, b["visitor_token"], "hello??")  # b is now the most recently active

    mine = await _ids(http, agent, assignee_id="me")
    assert conv_a in mine and conv_b not in mine
    assert await _ids(http, agent, tag="vip") == [conv_b]
    assert await _ids(http, agent, q="退货") == [conv_a]
    assert await _ids(http, agent, q="PARCEL") == [conv_b]
    assert await _ids(http, agent, q="refund risk") == []  # internal notes are not searched
    assert await _ids(http, agent, q="100%_") == []
    assert set(await _ids(http, agent, channel="webchat")) >= {conv_a, conv_b, conv_c}
    assert await _ids(http, agent, channel="email") == []

    ordered = [cid for cid in await _ids(http, agent, sort="last_activity") if cid in {conv_a, conv_b, conv_c}]
    assert ordered == [conv_b, conv_a, conv_c]
    first = await http.get("/api/v1/conversations", headers=agent, params={"sort": "last_activity", "limit": 1})
    rest = await http.get("/api/v1/conversations", headers=agent,
                          params={"sort": "last_activity", "limit": 200, "cursor": first.json()["next_cursor"]})
    paged = [c["id"] for c in first.json()["data"] + rest.json()["data"]]
    assert paged == await _ids(http, agent, sort="last_activity")
    bad = await http.get("/api/v1/conversations", headers=agent, params={"sort": "last_activity", "cursor": "bm9wZV8"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_unread_counts_follow_the_agents_read_mark(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    agent, supervisor = tenant.agent.headers, tenant.supervisor.headers
    visitor = await start_session(http, tenant.inbox_id)
    token = visitor["visitor_token"]
    first = await customer_says(http, token, "在吗")
    conversation_id = first["conversation_id"]
    await agent_says(http, agent, conversation_id, "在的")  # now assigned to the agent
    second = await customer_says(http, token, "订单 SO-9 还没到")
    third = await customer_says(http, token, "麻烦查一下")

    def unread_of(page: dict) -> int:  # type: ignore[type-arg]
        return next(c["unread_count"] for c in page["data"] if c["id"] == conversation_id)

    page = (await http.get("/api/v1/conversations", headers=agent, params={"assignee_id": "me"})).json()
    assert unread_of(page) == 3
    total = (await http.get("/api/v1/workspace/unread", headers=agent)).json()
    assert total == {"total": 3, "conversations": 1}

    marked = await http.post(f"/api/v1/conversations/{conversation_id}/read", headers=agent,
                             json={"up_to_message_id": second["id"]})
    assert marked.status_code == 200
    page = (await http.get("/api/v1/conversations", headers=agent, params={"assignee_id": "me"})).json()
    assert unread_of(page) == 1
    # Marks are per agent, and only move forwards.
    assert (await http.get("/api/v1/workspace/unread", headers=supervisor, params={"assignee_id": "all"})).json()[
        "total"] >= 3
    await http.post(f"/api/v1/conversations/{conversation_id}/read", headers=agent,
                    json={"up_to_message_id": first["id"]})
    assert (await http.get("/api/v1/workspace/unread", headers=agent)).json() == {"total": 1, "conversations": 1}
    await http.post(f"/api/v1/conversations/{conversation_id}/read", headers=agent,
                    json={"up_to_message_id": third["id"]})
    assert (await http.get("/api/v1/workspace/unread", headers=agent)).json() == {"total": 0, "conversations": 0}


async def test_contact_timeline_spans_conversations(http: httpx.AsyncClient, tenant: TenantFixture,
                                                    other_tenant: TenantFixture) -> None:
    agent = tenant.agent.headers
    visitor = await start_session(http, tenant.inbox_id)
    token = visitor["visitor_token"]
    one = await customer_says(http, token, "第一次咨询")
    await agent_says(http, agent, one["conversation_id"], "note: VIP", private=True)
    await http.post(f"/api/v1/conversations/{one['conversation_id']}/resolve", headers=agent)
    two = await customer_says(http, token, "第二次咨询")
    assert two["conversation_id"] != one["conversation_id"]

    url = f"/api/v1/contacts/{visitor['contact_id']}/timeline"
    whole = (await http.get(url, headers=agent)).json()
    bodies = [m["body"] for m in whole["data"]]
    assert bodies[0] == "第一次咨询" and "note: VIP" in bodies and bodies[-1] == "第二次咨询"
    assert {c["id"] for c in whole["conversations"]} == {one["conversation_id"], two["conversation_id"]}
    assert whole["has_more"] is False
    newest = (await http.get(url, headers=agent, params={"limit": 2})).json()
    assert newest["has_more"] is True and [m["body"] for m in newest["data"]] == bodies[-2:]
    older = (await http.get(url, headers=agent, params={"limit": 50, "before": newest["data"][0]["id"]})).json()
    assert [m["body"] for m in older["data"]] + [m["body"] for m in newest["data"]] == bodies
    hidden = await http.get(url, headers=other_tenant.agent.headers)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "contact_not_found"


async def test_widget_appearance_is_validated_and_reaches_the_widget(http: httpx.AsyncClient,
                                                                     tenant: TenantFixture) -> None:
    url = f"/api/v1/inboxes/{tenant.inbox_id}/appearance"
    inbox = await http.get(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers)
    version = inbox.headers["etag"]
    changed = await http.patch(url, headers={**tenant.admin.headers, "If-Match": version}, json={
        "color": "#E4393C", "position": "left", "greeting_zh": "您好，欢迎光临！", "launcher_label_zh": "问客服"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"]["position"] == "left"
    stale = await http.patch(url, headers={**tenant.admin.headers, "If-Match": version}, json={"position": "right"})
    assert stale.status_code == 409
    for bad in ({"color": "red"}, {"color": "#12345"}, {"position": "top"}, {"launcher_label_en": "x" * 41},
                {"color": None}):
        refused = await http.patch(url, headers=tenant.admin.headers, json=bad)
        assert refused.status_code == 422, bad
    assert (await http.patch(url, headers=tenant.agent.headers, json={"position": "right"})).status_code == 403

    zh = (await http.get("/api/v1/widget/config", params={"inbox_id": tenant.inbox_id, "locale": "zh"})).json()
    assert zh == {"inbox_id": tenant.inbox_id, "name": "Web chat", "greeting": "您好，欢迎光临！", "color": "#E4393C",
                  "position": "left", "locale": "zh", "launcher_label": "问客服", "csat_enabled": True}
    en = (await http.get("/api/v1/widget/config", params={"inbox_id": tenant.inbox_id, "locale": "en"})).json()
    assert en["launcher_label"] == "Chat with us" and en["greeting"] == "Hi! How can we help you today?"
    session = await start_session(http, tenant.inbox_id, locale="zh")
    assert session["widget"]["launcher_label"] == "问客服"
    history = await http.get("/api/v1/widget/messages", headers=bearer(session["visitor_token"]))
    assert history.status_code == 200
