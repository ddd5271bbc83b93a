"""A customer chats through the widget REST API and an agent answers through the agent API."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from kefu.channels.identity import make_identity_token
from kefu.core.i18n import translate
from tests.channels.chat import (
    agent_says,
    all_contacts,
    bearer,
    customer_says,
    identity_token,
    start_session,
    widget_history,
)
from tests.factories import TenantFixture


async def _conversation_of(http: httpx.AsyncClient, tenant: TenantFixture, contact_id: str) -> dict:
    listing = await http.get("/api/v1/conversations", headers=tenant.agent.headers, params={"contact_id": contact_id})
    assert listing.status_code == 200, listing.text
    [conversation] = listing.json()["data"]
    return conversation


async def test_customer_asks_agent_answers_and_notes_stay_internal(http: httpx.AsyncClient,
                                                                   tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    assert session["conversation_id"] is None and session["visitor_token"].startswith("vt1.")
    asked = await customer_says(http, session["visitor_token"], "我的订单 123 什么时候发货？")
    assert asked["sender_kind"] == "customer"

    listing = await http.get("/api/v1/conversations", headers=tenant.agent.headers,
                             params={"inbox_id": tenant.inbox_id, "status": "open"})
    assert listing.status_code == 200
    [conversation] = listing.json()["data"]
    assert conversation["contact_id"] == session["contact_id"]
    assert conversation["last_message_preview"] == "我的订单 123 什么时候发货？"
    messages = (await http.get(f"/api/v1/conversations/{conversation['id']}/messages",
                               headers=tenant.agent.headers)).json()["data"]
    assert [m["body"] for m in messages] == ["我的订单 123 什么时候发货？"]

    note = await agent_says(http, tenant.agent.headers, conversation["id"], "VIP, check the warehouse", private=True)
    reply = await agent_says(http, tenant.agent.headers, conversation["id"], "您好，今天发货。")
    assert note["private"] is True and reply["sender_kind"] == "agent"

    history = await widget_history(http, session["visitor_token"])
    assert [m["body"] for m in history] == ["我的订单 123 什么时候发货？", "您好，今天发货。"]
    events = (await http.get("/api/v1/widget/events", headers=bearer(session["visitor_token"]))).json()
    bodies = [e["data"]["message"]["body"] for e in events["events"] if e["type"] == "message.created"]
    assert bodies == ["我的订单 123 什么时候发货？", "您好，今天发货。"]
    assert "warehouse" not in str(events)
    # The agent sees the note in the timeline, and the first agent to answer took the conversation.
    agent_view = (await http.get(f"/api/v1/conversations/{conversation['id']}/messages",
                                 headers=tenant.agent.headers)).json()["data"]
    assert [m["private"] for m in agent_view] == [False, True, False]
    current = (await http.get(f"/api/v1/conversations/{conversation['id']}", headers=tenant.agent.headers)).json()
    assert current["assignee_id"] == tenant.agent.id and current["owner_kind"] == "agent"


async def test_history_pages_backwards_from_the_newest(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    for n in range(5):
        await customer_says(http, session["visitor_token"], f"line {n}")
    page = (await http.get("/api/v1/widget/messages", headers=bearer(session["visitor_token"]),
                           params={"limit": 2})).json()
    assert [m["body"] for m in page["data"]] == ["line 3", "line 4"] and page["has_more"] is True
    older = (await http.get("/api/v1/widget/messages", headers=bearer(session["visitor_token"]),
                            params={"limit": 2, "before": page["data"][0]["id"]})).json()
    assert [m["body"] for m in older["data"]] == ["line 1", "line 2"]
    newer = await widget_history(http, session["visitor_token"], after=older["data"][0]["id"])
    assert [m["body"] for m in newer] == ["line 2", "line 3", "line 4"]


async def test_long_poll_returns_promptly_when_a_reply_arrives(http: httpx.AsyncClient,
                                                                tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    token = session["visitor_token"]
    await customer_says(http, token, "hello?")
    conversation = await _conversation_of(http, tenant, session["contact_id"])
    caught_up = (await http.get("/api/v1/widget/events", headers=bearer(token))).json()
    assert [e["type"] for e in caught_up["events"]] == ["message.created"]

    async def poll() -> tuple[float, dict]:
        response = await http.get("/api/v1/widget/events", headers=bearer(token),
                                  params={"after": caught_up["last_event_id"], "wait": 10})
        assert response.status_code == 200, response.text
        return time.perf_counter(), response.json()

    waiting = asyncio.create_task(poll())
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await agent_says(http, tenant.agent.headers, conversation["id"], "internal: refund risk", private=True)
    sent_at = time.perf_counter()
    await agent_says(http, tenant.agent.headers, conversation["id"], "Hi, how can I help?")
    returned_at, answer = await waiting
    assert returned_at - sent_at < 1.5
    frames = answer["events"]
    assert frames and all(set(f) == {"type", "id", "created_at", "data"} for f in frames)
    created = [f["data"]["message"]["body"] for f in frames if f["type"] == "message.created"]
    assert created == ["Hi, how can I help?"]
    assert "refund risk" not in str(answer)
    assert answer["last_event_id"] >= max(f["id"] for f in frames)


async def test_long_poll_without_news_waits_then_answers_empty(http: httpx.AsyncClient,
                                                              tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    started = time.perf_counter()
    response = await http.get("/api/v1/widget/events", headers=bearer(session["visitor_token"]),
                              params={"after": 0, "wait": 0.6})
    assert response.status_code == 200
    assert response.json() == {"events": [], "last_event_id": 0}
    assert time.perf_counter() - started >= 0.5


async def test_concurrent_sends_with_one_client_id_store_one_message(http: httpx.AsyncClient,
                                                                     tenant: TenantFixture) -> None:
    session = await start_session(http, tenant.inbox_id)
    client_id = str(uuid.uuid4())
    responses = await asyncio.gather(*(
        http.post("/api/v1/widget/messages", headers=bearer(session["visitor_token"]),
                  json={"body": "only once", "client_message_id": client_id}) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert [m["body"] for m in await widget_history(http, session["visitor_token"])] == ["only once"]


async def test_a_verified_customer_on_two_devices_is_one_contact(http: httpx.AsyncClient,
                                                                 tenant: TenantFixture) -> None:
    customer = f"shop-customer-{uuid.uuid4().hex[:8]}"
    phone = await start_session(http, tenant.inbox_id, identity_token=identity_token(tenant.inbox_secret, customer))
    laptop = await start_session(http, tenant.inbox_id, identity_token=identity_token(tenant.inbox_secret, customer))
    assert phone["verified"] and laptop["verified"]
    assert phone["visitor_id"] != laptop["visitor_id"]
    assert phone["contact_id"] == laptop["contact_id"]
    await customer_says(http, phone["visitor_token"], "from my phone")
    await customer_says(http, laptop["visitor_token"], "and from my laptop")

    timeline = (await http.get(f"/api/v1/contacts/{phone['contact_id']}/conversations",
                               headers=tenant.agent.headers)).json()["data"]
    assert len(timeline) == 1 and timeline[0]["message_count"] == 2
    contact = (await http.get(f"/api/v1/contacts/{phone['contact_id']}", headers=tenant.agent.headers)).json()
    kinds = sorted((i["kind"], i["verified"]) for i in contact["identities"])
    assert kinds == [("external", True), ("visitor", False), ("visitor", False)]
    assert [m["body"] for m in await widget_history(http, phone["visitor_token"])] == [
        "from my phone", "and from my laptop"]


async def test_anonymous_chat_joins_the_customer_after_login(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    customer = f"shop-customer-{uuid.uuid4().hex[:8]}"
    known = await start_session(http, tenant.inbox_id, identity_token=identity_token(tenant.inbox_secret, customer))
    await customer_says(http, known["visitor_token"], "last week's question")
    await http.post(f"/api/v1/conversations/{(await _conversation_of(http, tenant, known['contact_id']))['id']}"
                    "/resolve", headers=tenant.agent.headers)

    anonymous = await start_session(http, tenant.inbox_id)
    assert anonymous["contact_id"] != known["contact_id"]
    await customer_says(http, anonymous["visitor_token"], "asked before logging in")
    logged_in = await start_session(http, tenant.inbox_id, visitor_token=anonymous["visitor_token"],
                                    identity_token=identity_token(tenant.inbox_secret, customer))
    assert logged_in["contact_id"] == known["contact_id"]
    assert logged_in["visitor_id"] == anonymous["visitor_id"] and logged_in["verified"]
    assert logged_in["conversation_id"] is not None

    bodies = [m["body"] for m in await widget_history(http, logged_in["visitor_token"])]
    assert bodies[0] == "last week's question" and bodies[-1] == "asked before logging in"
    timeline = (await http.get(f"/api/v1/contacts/{known['contact_id']}/conversations",
                               headers=tenant.agent.headers)).json()["data"]
    assert len(timeline) == 2
    merged = (await http.get(f"/api/v1/contacts/{anonymous['contact_id']}", headers=tenant.agent.headers)).json()
    assert merged["merged_into_id"] == known["contact_id"] and merged["identities"] == []
    # The old anonymous token keeps working and lands in the customer's timeline.
    await customer_says(http, anonymous["visitor_token"], "still me")
    assert (await widget_history(http, logged_in["visitor_token"]))[-1]["body"] == "still me"

    audit = (await http.get("/api/v1/audit-entries", headers=tenant.admin.headers,
                            params={"action": "contact.merged"})).json()["data"]
    assert len(audit) == 1 and audit[0]["actor_type"] == "system"
    assert audit[0]["details"]["source_contact_id"] == anonymous["contact_id"]
    merge = (await http.get(f"/api/v1/contact-merges/{audit[0]['details']['merge_id']}",
                            headers=tenant.agent.headers)).json()
    assert merge["target_contact_id"] == known["contact_id"] and merge["merged_by"] is None


async def test_a_different_customer_on_a_shared_browser_does_not_inherit_history(
        http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    alice = await start_session(http, tenant.inbox_id,
                                identity_token=identity_token(tenant.inbox_secret, f"alice-{uuid.uuid4().hex[:6]}"))
    await customer_says(http, alice["visitor_token"], "alice's private order")
    bob = await start_session(http, tenant.inbox_id, visitor_token=alice["visitor_token"],
                              identity_token=identity_token(tenant.inbox_secret, f"bob-{uuid.uuid4().hex[:6]}"))
    assert bob["contact_id"] != alice["contact_id"] and bob["visitor_id"] != alice["visitor_id"]
    assert await widget_history(http, bob["visitor_token"]) == []
    alice_now = (await http.get(f"/api/v1/contacts/{alice['contact_id']}", headers=tenant.agent.headers)).json()
    assert alice_now["merged_into_id"] is None
    assert [i["kind"] for i in alice_now["identities"]].count("external") == 1


async def test_bad_identity_tokens_are_refused_and_store_nothing(http: httpx.AsyncClient,
                                                                 tenant: TenantFixture) -> None:
    secret = tenant.inbox_secret
    good = identity_token(secret, "c-1")
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    cases = [
        (tampered, 401, "invalid_identity_token"),
        (make_identity_token("not-the-secret", "c-1", nonce=uuid.uuid4().hex), 401, "invalid_identity_token"),
        ("c-1.not-a-token", 401, "invalid_identity_token"),
        (make_identity_token(secret, "c-1", nonce=uuid.uuid4().hex, issued_at=int(time.time()) - 3600), 401,
         "identity_token_expired"),
    ]
    for token, status, code in cases:
        response = await http.post("/api/v1/widget/sessions", json={"inbox_id": tenant.inbox_id,
                                                                     "identity_token": token})
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), token
    assert await all_contacts(http, tenant.admin.headers) == []

    first = await http.post("/api/v1/widget/sessions", json={"inbox_id": tenant.inbox_id, "identity_token": good})
    assert first.status_code == 201
    before = await all_contacts(http, tenant.admin.headers)
    replay = await http.post("/api/v1/widget/sessions", json={"inbox_id": tenant.inbox_id, "identity_token": good},
                             headers={"Accept-Language": "zh-CN"})
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "identity_token_replayed"
    assert replay.json()["error"]["message"] == translate("identity_token_replayed", "zh")
    assert await all_contacts(http, tenant.admin.headers) == before


async def test_inbox_that_requires_identity_refuses_anonymous_visitors(http: httpx.AsyncClient,
                                                                       tenant: TenantFixture) -> None:
    patched = await http.patch(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers,
                               json={"require_identity": True})
    assert patched.status_code == 200
    refused = await http.post("/api/v1/widget/sessions", json={"inbox_id": tenant.inbox_id})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "identity_verification_required"
    assert await all_contacts(http, tenant.admin.headers) == []
    await start_session(http, tenant.inbox_id, identity_token=identity_token(tenant.inbox_secret, "c-9"))


async def test_unknown_inbox_and_bad_visitor_tokens(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    missing = await http.post("/api/v1/widget/sessions", json={"inbox_id": "inb_01jd0000000000000000000000"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "inbox_not_found"
    session = await start_session(http, tenant.inbox_id)
    tampered = session["visitor_token"][:-2] + "xx"
    for headers in ({}, tenant.agent.headers, bearer(tampered)):
        for method, path in (("GET", "/api/v1/widget/messages"), ("GET", "/api/v1/widget/events"),
                             ("POST", "/api/v1/widget/messages")):
            response = await http.request(method, path, headers=headers,
                                          json={"body": "x", "client_message_id": "c"} if method == "POST" else None)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "invalid_visitor_token"
    assert await widget_history(http, session["visitor_token"]) == []


async def test_widget_config_is_public_and_localised(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    await http.patch(f"/api/v1/inboxes/{tenant.inbox_id}", headers=tenant.admin.headers,
                     json={"settings": {"greeting_zh": "欢迎光临！", "greeting_en": "Welcome!", "color": "#e4393c",
                                        "position": "left"}})
    zh = await http.get("/api/v1/widget/config", params={"inbox_id": tenant.inbox_id},
                        headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    en = await http.get("/api/v1/widget/config", params={"inbox_id": tenant.inbox_id, "locale": "en"})
    assert zh.json()["greeting"] == "欢迎光临！" and zh.json()["locale"] == "zh"
    assert en.json() == {**zh.json(), "greeting": "Welcome!", "locale": "en", "launcher_label": "Chat with us"}
    assert en.json()["color"] == "#e4393c" and en.json()["position"] == "left"
    assert "identity_secret" not in zh.text and tenant.inbox_secret not in zh.text
    missing = await http.get("/api/v1/widget/config", params={"inbox_id": "inb_nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "inbox_not_found"
