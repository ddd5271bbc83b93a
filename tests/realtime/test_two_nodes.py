"""Two nodes on one PostgreSQL and one Redis: an agent on node A and a customer on node B talk live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu.runtime import Runtime
from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import create_tenant
from tests.realtime.wsclient import agent_client, is_ack, is_message, start_visitor, visitor_client

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
async def pg_runtime(postgres_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(postgres_url) as runtime:
        yield runtime


async def test_agent_on_node_a_and_customer_on_node_b(postgres_url: str, redis_url: str,
                                                      pg_runtime: Runtime) -> None:
    tenant = await create_tenant(pg_runtime)
    session = await start_visitor(pg_runtime, tenant.inbox_id)
    # The outbox sweeper only picks up events after an hour here, so whatever arrives came over Redis.
    node_a = LiveServer(make_settings(postgres_url, redis_url=redis_url, node_id="node-a",
                                      outbox_stale_seconds=3600)).start()
    node_b = LiveServer(make_settings(postgres_url, redis_url=redis_url, node_id="node-b",
                                      outbox_stale_seconds=3600)).start()
    try:
        agent, _, _ = await agent_client(node_a.ws_url, tenant.agent.token)
        visitor, _, _ = await visitor_client(node_b.ws_url, session.visitor_token)

        await visitor.send({"type": "message.send", "id": "b-1", "data": {"body": "hello from node B"}})
        seen = await agent.wait_for(is_message("hello from node B"), timeout=5.0)
        conversation_id = seen["data"]["message"]["conversation_id"]
        assert (await visitor.wait_for(is_ack("b-1")))["type"] == "message.ack"

        await agent.send({"type": "message.send", "id": "a-1",
                          "data": {"conversation_id": conversation_id, "body": "reply from node A"}})
        await visitor.wait_for(is_message("reply from node A"), timeout=5.0)

        # Each event reached each client once, although both nodes saw it (locally and from the stream).
        for client in (agent, visitor):
            await client.sync()
            ids = [f["id"] for f in client.received if isinstance(f.get("id"), int)]
            assert len(ids) == len(set(ids))
        await agent.close()
        await visitor.close()
    finally:
        node_a.stop()
        node_b.stop()
