"""Agent and visitor WebSockets end to end on a real server: live delivery, privacy, isolation, errors."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select

from kefu.conversations.models import Message
from kefu.runtime import Runtime
from tests.conftest import LiveServer, make_settings
from tests.factories import TenantFixture
from tests.realtime.wsclient import WSClient, agent_client, is_ack, is_message, start_visitor, visitor_client


def cid() -> str:
    return f"c-{uuid.uuid4().hex}"


async def test_customer_message_reaches_agent_and_reply_reaches_customer(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    session = await start_visitor(runtime, tenant.inbox_id)
    agent, registered, before = await agent_client(server.ws_url, tenant.agent.token)
    assert before == [] and registered["data"]["user_id"] == tenant.agent.id
    assert isinstance(registered["data"]["last_event_id"], int)
    stranger, _, _ = await agent_client(server.ws_url, other_tenant.agent.token)
    colleague, _, _ = await agent_client(server.ws_url, tenant.supervisor.token)
    visitor, vreg, _ = await visitor_client(server.ws_url, session.visitor_token)
    assert vreg["data"]["contact_id"] == session.contact_id

    send_id = cid()
    await visitor.send({"type": "message.send", "id": send_id, "data": {"body": "我的快递到哪了？"}})
    ack = await visitor.wait_for(is_ack(send_id))
    assert ack["type"] == "message.ack" and ack["data"]["created"] is True
    assert ack["data"]["message"]["body"] == "我的快递到哪了？"
    assert "sender_id" not in ack["data"]["message"]

    seen = await agent.wait_for(is_message("我的快递到哪了？"))
    assert seen["id"] > registered["data"]["last_event_id"]
    message = seen["data"]["message"]
    assert message["sender_kind"] == "customer" and message["client_message_id"] == send_id
    conversation_id = message["conversation_id"]

    reply_id = cid()
    await agent.send({"type": "message.send", "id": reply_id,
                      "data": {"conversation_id": conversation_id, "body": "您好，已经发货了。"}})
    reply_ack = await agent.wait_for(is_ack(reply_id))
    assert reply_ack["type"] == "message.ack" and reply_ack["data"]["message"]["sender_kind"] == "agent"
    got = await visitor.wait_for(is_message("您好，已经发货了。"))
    assert got["data"]["message"]["sender_kind"] == "agent" and "sender_id" not in got["data"]["message"]
    assert set(got["data"].get("conversation", {"id": None, "status": None})) <= {"id", "status"}

    # An internal note reaches agents but never the customer.
    note_id = cid()
    await agent.send({"type": "message.send", "id": note_id,
                      "data": {"conversation_id": conversation_id, "body": "客户很着急 VIP", "private": True}})
    assert (await agent.wait_for(is_ack(note_id)))["data"]["message"]["private"] is True
    await colleague.wait_for(is_message("客户很着急 VIP"))
    leaked = [f for f in await visitor.sync() + visitor.received if "VIP" in str(f)]
    assert leaked == []

    # Tenant B's agent saw nothing of tenant A.
    assert await stranger.sync() == []
    assert [f["type"] for f in stranger.received] == ["registered", "pong"]
    for client in (agent, stranger, colleague, visitor):
        await client.close()


async def test_resume_replays_exactly_the_missed_events(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    session = await start_visitor(runtime, tenant.inbox_id)
    visitor, visitor_registered, _ = await visitor_client(server.ws_url, session.visitor_token)
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    first = cid()
    await visitor.send({"type": "message.send", "id": first, "data": {"body": "first"}})
    await visitor.wait_for(is_ack(first))
    event = await agent.wait_for(is_message("first"))
    conversation_id = event["data"]["message"]["conversation_id"]
    live_ids = [f["id"] for f in agent.received if isinstance(f.get("id"), int)]
    last_seen = max(live_ids)
    await agent.send({"type": "ack", "last_event_id": last_seen})
    await agent.sync()
    last_seen = max(f["id"] for f in agent.received if isinstance(f.get("id"), int))
    await agent.close()

    for body in ("second", "third"):
        client_id = cid()
        await visitor.send({"type": "message.send", "id": client_id, "data": {"body": body}})
        await visitor.wait_for(is_ack(client_id))

    agent2, registered, replayed = await agent_client(server.ws_url, tenant.agent.token, resume_from=last_seen)
    replayed_ids = [f["id"] for f in replayed]
    assert replayed_ids == sorted(set(replayed_ids)), "replay is in id order without duplicates"
    assert [f["data"]["message"]["body"] for f in replayed if f["type"] == "message.created"] == ["second", "third"]
    assert registered["data"]["last_event_id"] == replayed_ids[-1]
    assert all(i > last_seen for i in replayed_ids)
    assert await agent2.sync() == []  # nothing delivered twice after the replay

    # The same through ?resume_from= on the URL, and for the visitor: notes are not replayed to them.
    await visitor.close()
    note, reply = cid(), cid()
    await agent2.send({"type": "message.send", "id": note,
                       "data": {"conversation_id": conversation_id, "body": "internal only", "private": True}})
    await agent2.wait_for(is_ack(note))
    await agent2.send({"type": "message.send", "id": reply,
                       "data": {"conversation_id": conversation_id, "body": "public reply"}})
    await agent2.wait_for(is_ack(reply))
    # The visitor's own messages came back as acks, not events: its position is where it registered.
    vis_resume = max([visitor_registered["data"]["last_event_id"],
                      *(f["id"] for f in visitor.received if isinstance(f.get("id"), int))])
    visitor2 = await WSClient.open(f"{server.ws_url}/api/v1/widget/ws?resume_from={vis_resume}")
    vreg, vreplayed = await visitor2.register({"visitor_token": session.visitor_token})
    bodies = [f["data"]["message"]["body"] for f in vreplayed if f["type"] == "message.created"]
    # Its own messages (live it had acks, not events), then the public reply; never the internal note.
    assert bodies == ["first", "second", "third", "public reply"]
    assert vreg["data"]["last_event_id"] >= vreplayed[-1]["id"]
    await agent2.close()
    await visitor2.close()


async def test_message_send_is_idempotent_by_client_id(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    session = await start_visitor(runtime, tenant.inbox_id)
    visitor, _, _ = await visitor_client(server.ws_url, session.visitor_token)
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    same = cid()
    for _ in range(2):
        await visitor.send({"type": "message.send", "id": same, "data": {"body": "only once"}})
    acks = [await visitor.wait_for(is_ack(same)) for _ in range(2)]
    assert acks[0]["data"]["message"]["id"] == acks[1]["data"]["message"]["id"]
    assert sorted(a["data"]["created"] for a in acks) == [False, True]
    conversation_id = acks[0]["data"]["message"]["conversation_id"]

    reply = cid()
    for _ in range(2):
        await agent.send({"type": "message.send", "id": reply,
                          "data": {"conversation_id": conversation_id, "body": "reply once"}})
    replies = [await agent.wait_for(is_ack(reply)) for _ in range(2)]
    assert replies[0]["data"]["message"]["id"] == replies[1]["data"]["message"]["id"]
    # Each side got the other's message once as an event; its own came back only as acks.
    await agent.sync()
    await visitor.sync()
    assert [f["data"]["message"]["body"] for f in agent.received if f["type"] == "message.created"] == ["only once"]
    assert [f["data"]["message"]["body"] for f in visitor.received
            if f["type"] == "message.created"] == ["reply once"]

    async with runtime.sessionmaker() as db:
        count = await db.scalar(select(func.count()).select_from(Message)
                                .where(Message.conversation_id == conversation_id))
    assert count == 2
    await visitor.close()
    await agent.close()


async def test_protocol_errors_and_close_codes(server: LiveServer, runtime: Runtime, tenant: TenantFixture,
                                               other_tenant: TenantFixture) -> None:
    url = f"{server.ws_url}/api/v1/realtime"
    cases = [
        ("{not json", "malformed_json"),
        ({"type": "message.send", "id": "x", "data": {}}, "register_required"),
        ({"type": "register", "data": {"token": "nope"}}, "invalid_token"),
        ({"type": "register", "data": {"token": tenant.agent.token, "resume_from": "abc"}}, "validation_error"),
    ]
    for frame, code in cases:
        client = await WSClient.open(url)
        await client.send(frame)
        close_code, frames = await client.closed()
        assert close_code == 4401 and frames[0]["type"] == "error" and frames[0]["data"]["code"] == code

    visitor = await WSClient.open(f"{server.ws_url}/api/v1/widget/ws", lang="zh-CN,zh;q=0.9")
    await visitor.send({"type": "register", "id": "r", "data": {"visitor_token": "vt1.forged.token"}})
    close_code, frames = await visitor.closed()
    assert close_code == 4401 and frames[0]["data"]["code"] == "invalid_visitor_token"
    assert frames[0]["id"] == "r" and frames[0]["data"]["message"] == "会话凭证无效或已过期。"

    # After register, bad frames get error frames and the connection stays usable.
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token, lang="en")
    await agent.send("{oops")
    assert (await agent.recv())["data"]["code"] == "malformed_json"
    await agent.send({"type": "subscribe", "id": "s1"})
    err = await agent.recv()
    assert err["data"]["code"] == "unknown_frame" and err["id"] == "s1"
    await agent.send({"type": "register", "data": {"token": tenant.agent.token}})
    assert (await agent.recv())["data"]["code"] == "already_registered"
    await agent.send({"type": "message.send", "id": "m1", "data": {"conversation_id": "conv_x", "body": "hi"}})
    err = await agent.wait_for(is_ack("m1"))
    assert err["type"] == "error" and err["data"]["code"] == "conversation_not_found"
    assert err["data"]["message"] == "The conversation does not exist."
    await agent.send({"type": "message.send", "data": {"conversation_id": "conv_x", "body": "hi"}})
    assert (await agent.recv())["data"] == {"code": "validation_error", "message": "The request is not valid.",
                                            "details": {"field": "id"}}
    await agent.send({"type": "ack", "last_event_id": -1})
    assert (await agent.recv())["data"]["code"] == "validation_error"

    # A conversation of another tenant answers exactly like one that does not exist.
    session = await start_visitor(runtime, other_tenant.inbox_id)
    other_visitor, _, _ = await visitor_client(server.ws_url, session.visitor_token)
    await other_visitor.send({"type": "message.send", "id": "o1", "data": {"body": "hello"}})
    foreign = (await other_visitor.wait_for(is_ack("o1")))["data"]["message"]["conversation_id"]
    await agent.send({"type": "message.send", "id": "m2", "data": {"conversation_id": foreign, "body": "hi"}})
    assert (await agent.wait_for(is_ack("m2")))["data"]["code"] == "conversation_not_found"
    await other_visitor.send({"type": "message.send", "id": "o2", "data": {"body": "   "}})
    assert (await other_visitor.wait_for(is_ack("o2")))["data"]["code"] == "empty_message"
    await agent.send({"type": "ping"})
    assert (await agent.recv()) == {"type": "pong"}
    await agent.close()
    await other_visitor.close()


async def test_user_locale_is_used_without_accept_language(server: LiveServer, runtime: Runtime) -> None:
    from tests.factories import create_tenant, create_user

    tenant = await create_tenant(runtime)
    zh_agent = await create_user(runtime, tenant.id, "agent", locale="zh")
    agent, _, _ = await agent_client(server.ws_url, zh_agent.token)
    await agent.send({"type": "nope"})
    assert (await agent.recv())["data"]["message"] == "未知的消息帧类型。"
    await agent.close()


async def test_metrics_count_connections_and_events(server: LiveServer, http: httpx.AsyncClient, runtime: Runtime,
                                                    tenant: TenantFixture) -> None:
    def gauge(text: str, kind: str) -> float:
        for line in text.splitlines():
            if line.startswith(f'kefu_websocket_connections{{kind="{kind}"}}'):
                return float(line.split()[-1])
        return 0.0

    before = (await http.get("/metrics")).text
    session = await start_visitor(runtime, tenant.inbox_id)
    visitor, _, _ = await visitor_client(server.ws_url, session.visitor_token)
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    during = (await http.get("/metrics")).text
    assert gauge(during, "agent") == gauge(before, "agent") + 1
    assert gauge(during, "visitor") == gauge(before, "visitor") + 1
    await visitor.send({"type": "message.send", "id": "m", "data": {"body": "count me"}})
    await agent.wait_for(is_message("count me"))
    await agent.sync()
    after = (await http.get("/metrics")).text
    assert 'kefu_events_delivered_total{kind="agent"}' in after
    await visitor.close()
    await agent.close()


async def test_api_keys_need_scopes_and_post_as_bot(server: LiveServer, http: httpx.AsyncClient, runtime: Runtime,
                                                    tenant: TenantFixture) -> None:
    async def key(*scopes: str) -> str:
        made = await http.post("/api/v1/api-keys", headers=tenant.admin.headers,
                               json={"name": f"ws {'+'.join(scopes)}", "scopes": list(scopes)})
        assert made.status_code == 201, made.text
        return made.json()["token"]

    blind = await WSClient.open(f"{server.ws_url}/api/v1/realtime")
    await blind.send({"type": "register", "data": {"token": await key("contacts:read")}})
    code, frames = await blind.closed()
    assert code == 4403 and frames[0]["data"]["code"] == "insufficient_scope"

    reader, registered, _ = await agent_client(server.ws_url, await key("conversations:read"))
    assert registered["data"]["user_id"] is None and registered["data"]["principal_id"].startswith("key_")
    await reader.send({"type": "message.send", "id": "k1", "data": {"conversation_id": "conv_x", "body": "hi"}})
    assert (await reader.wait_for(is_ack("k1")))["data"]["code"] == "insufficient_scope"

    session = await start_visitor(runtime, tenant.inbox_id)
    visitor, _, _ = await visitor_client(server.ws_url, session.visitor_token)
    await visitor.send({"type": "message.send", "id": "v1", "data": {"body": "is anyone there?"}})
    conversation_id = (await visitor.wait_for(is_ack("v1")))["data"]["message"]["conversation_id"]
    writer, _, _ = await agent_client(server.ws_url, await key("conversations:read", "conversations:write"))
    await writer.send({"type": "message.send", "id": "k2",
                       "data": {"conversation_id": conversation_id, "body": "automatic answer"}})
    ack = await writer.wait_for(is_ack("k2"))
    assert ack["type"] == "message.ack" and ack["data"]["message"]["sender_kind"] == "bot"
    assert (await visitor.wait_for(is_message("automatic answer")))["data"]["message"]["sender_kind"] == "bot"
    for client in (reader, visitor, writer):
        await client.close()


async def test_shutdown_tells_clients_to_reconnect(sqlite_url: str, tenant: TenantFixture) -> None:
    node = LiveServer(make_settings(sqlite_url)).start()
    agent, _, _ = await agent_client(node.ws_url, tenant.agent.token)
    node.stop()
    code, _ = await agent.closed()
    assert code == 1012  # service restart: reconnect (to any node) with resume_from


async def test_the_sending_socket_gets_its_ack_and_the_visitors_other_tabs_the_event(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    """One frame per own message on the socket that sent it (the ack carries the stored message); another
    tab of the same visitor and the agents get ``message.created``; a resume replays it to the sender too."""
    session = await start_visitor(runtime, tenant.inbox_id)
    tab, registered, _ = await visitor_client(server.ws_url, session.visitor_token)
    other_tab, _, _ = await visitor_client(server.ws_url, session.visitor_token)
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    send_id = cid()
    await tab.send({"type": "message.send", "id": send_id, "data": {"body": "还在吗"}})
    ack = await tab.wait_for(is_ack(send_id))
    event = await other_tab.wait_for(is_message("还在吗"))
    assert event["data"]["message"]["id"] == ack["data"]["message"]["id"]
    await agent.wait_for(is_message("还在吗"))
    await tab.sync()
    assert [f["type"] for f in tab.received if "还在吗" in str(f)] == ["message.ack"]

    again, _, replayed = await visitor_client(server.ws_url, session.visitor_token,
                                              resume_from=registered["data"]["last_event_id"])
    assert [f["data"]["message"]["id"] for f in replayed if f["type"] == "message.created"] == [event["data"]["message"]["id"]]
    for client in (tab, other_tab, agent, again):
        await client.close()
