"""Typing indicators over the real WebSockets: relayed to the other side, rate limited, never stored."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from kefu.events.models import OutboxEvent
from kefu.realtime.typing import REPEAT_SECONDS, TypingLimiter
from kefu.runtime import Runtime
from tests.channels.chat import agent_says, customer_says, start_session
from tests.conftest import LiveServer
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client, visitor_client


def _typing(frame: dict) -> bool:  # type: ignore[type-arg]
    return frame["type"] == "conversation.typing"


async def _outbox_rows(runtime: Runtime, tenant_id: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id)) or 0)


async def test_typing_is_relayed_both_ways_and_never_stored(
    http: httpx.AsyncClient, server: LiveServer, runtime: Runtime, tenant: TenantFixture,
    other_tenant: TenantFixture,
) -> None:
    visitor = await start_session(http, tenant.inbox_id)
    said = await customer_says(http, visitor["visitor_token"], "有人吗")
    conversation_id = said["conversation_id"]
    await agent_says(http, tenant.agent.headers, conversation_id, "您好")
    widget, _, _ = await visitor_client(server.ws_url, visitor["visitor_token"])
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    colleague, _, _ = await agent_client(server.ws_url, tenant.supervisor.token)
    outsider, _, _ = await agent_client(server.ws_url, other_tenant.agent.token)
    try:
        stored = await _outbox_rows(runtime, tenant.id)
        await widget.send({"type": "typing", "data": {"typing": True}})
        seen = await agent.wait_for(_typing)
        assert seen["data"] == {"conversation_id": conversation_id, "typing": True, "sender_kind": "customer",
                                "contact_id": visitor["contact_id"]}
        assert "id" not in seen  # not an event: no id, no replay, no ack
        assert (await colleague.wait_for(_typing))["data"]["typing"] is True

        await agent.send({"type": "typing", "data": {"conversation_id": conversation_id, "typing": True}})
        shown = await widget.wait_for(_typing)
        assert shown["data"] == {"conversation_id": conversation_id, "typing": True, "sender_kind": "agent"}
        watched = await colleague.wait_for(lambda f: _typing(f) and f["data"]["sender_kind"] == "agent")
        assert watched["data"]["user_id"] == tenant.agent.id
        # Drafting an internal note tells colleagues only.
        await agent.send({"type": "typing", "data": {"conversation_id": conversation_id, "typing": False}})
        await agent.send({"type": "typing", "data": {"conversation_id": conversation_id, "typing": True,
                                                     "private": True}})
        await colleague.wait_for(lambda f: _typing(f) and f["data"].get("private") is True)
        visible = [f for f in await widget.quiet(0.3) if _typing(f)]
        assert [f["data"]["typing"] for f in visible] == [False]  # the stop; never the private start

        assert not [f for f in await agent.sync() if _typing(f)]  # nobody gets their own frame back
        assert not [f for f in await outsider.sync() if _typing(f)]  # nor another tenant
        assert await _outbox_rows(runtime, tenant.id) == stored
    finally:
        for client in (widget, agent, colleague, outsider):
            await client.close()


async def test_bursts_are_dropped_and_bad_frames_refused(
    http: httpx.AsyncClient, server: LiveServer, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    visitor = await start_session(http, tenant.inbox_id)
    said = await customer_says(http, visitor["visitor_token"], "hi")
    foreign = await customer_says(http, (await start_session(http, other_tenant.inbox_id))["visitor_token"], "x")
    widget, _, _ = await visitor_client(server.ws_url, visitor["visitor_token"])
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    try:
        for _ in range(30):  # a client stuck in a loop
            await widget.send({"type": "typing", "data": {"typing": True}})
        first = await agent.wait_for(_typing, timeout=10)  # however slow the relay, the first one arrives
        later = [f for f in await agent.quiet(0.5) if _typing(f)]
        assert first["data"]["typing"] is True and later == []  # and the other 29 never do
        await agent.send({"type": "typing", "id": "t1", "data": {"typing": "yes", "conversation_id": "x"}})
        error = await agent.wait_for(lambda f: f["type"] == "error")
        assert error["id"] == "t1" and error["data"]["code"] == "validation_error"
        await agent.send({"type": "typing", "id": "t2", "data": {"typing": True,
                                                                 "conversation_id": foreign["conversation_id"]}})
        error = await agent.wait_for(lambda f: f["type"] == "error")
        assert error["data"]["code"] == "conversation_not_found"
        await widget.send({"type": "typing", "id": "t3", "data": {"typing": False,
                                                                  "conversation_id": foreign["conversation_id"]}})
        error = await widget.wait_for(lambda f: f["type"] == "error")
        assert error["data"]["code"] == "conversation_not_found"
        assert said["conversation_id"]
    finally:
        await widget.close()
        await agent.close()


def test_limiter_rules() -> None:
    limiter = TypingLimiter()
    assert limiter.allow("c1", True, now=0.0)
    assert not limiter.allow("c1", True, now=REPEAT_SECONDS / 2)  # a refresh too soon
    assert limiter.allow("c1", True, now=REPEAT_SECONDS + 0.1)
    assert limiter.allow("c1", False, now=REPEAT_SECONDS + 0.2)
    assert not limiter.allow("c1", False, now=REPEAT_SECONDS + 0.3)  # a repeated stop
    changes = sum(limiter.allow("c2", i % 2 == 0, now=5.0 + i * 0.01) for i in range(50))
    assert changes < 10  # the burst budget (10 per 10 s, 2 already used) caps state flapping
    assert limiter.allow("c2", True, now=30.0)  # and recovers
