"""Typing across nodes: a customer on node B types, the agent on node A sees it (Redis pub/sub, no outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu.runtime import Runtime
from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import create_tenant
from tests.realtime.wsclient import agent_client, is_ack, start_visitor, visitor_client

pytestmark = [pytest.mark.slow]


@pytest.fixture
async def pg_runtime(postgres_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(postgres_url) as runtime:
        yield runtime


async def test_typing_crosses_nodes(postgres_url: str, redis_url: str, pg_runtime: Runtime) -> None:
    tenant = await create_tenant(pg_runtime)
    session = await start_visitor(pg_runtime, tenant.inbox_id)
    node_a = LiveServer(make_settings(postgres_url, redis_url=redis_url, node_id="ws-node-a")).start()
    node_b = LiveServer(make_settings(postgres_url, redis_url=redis_url, node_id="ws-node-b")).start()
    try:
        agent, _, _ = await agent_client(node_a.ws_url, tenant.agent.token)
        visitor, _, _ = await visitor_client(node_b.ws_url, session.visitor_token)
        await visitor.send({"type": "message.send", "id": "m-1", "data": {"body": "hello"}})
        ack = await visitor.wait_for(is_ack("m-1"))
        conversation_id = ack["data"]["message"]["conversation_id"]

        await visitor.send({"type": "typing", "data": {"typing": True}})
        seen = await agent.wait_for(lambda f: f["type"] == "conversation.typing", timeout=5.0)
        assert seen["data"]["conversation_id"] == conversation_id and seen["data"]["sender_kind"] == "customer"
        await agent.send({"type": "typing", "data": {"conversation_id": conversation_id, "typing": True}})
        shown = await visitor.wait_for(lambda f: f["type"] == "conversation.typing", timeout=5.0)
        assert shown["data"]["sender_kind"] == "agent"
        # Once per client: the sending node delivers locally and skips its own packet coming back.
        await agent.sync()
        assert sum(f["type"] == "conversation.typing" for f in agent.received) == 1
        await agent.close()
        await visitor.close()
    finally:
        node_a.stop()
        node_b.stop()
