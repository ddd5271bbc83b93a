"""Delivery guarantees of the hub: slow clients are cut off without hurting others, duplicates are dropped,
and a client that missed too much is told to resync."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from kefu.events import types as ev
from kefu.events.models import OutboxEvent
from kefu.events.outbox import to_event
from kefu.realtime.hub import CLOSE_SLOW_CONSUMER
from kefu.runtime import Runtime
from tests.conftest import LiveServer, make_settings
from tests.factories import TenantFixture
from tests.realtime.wsclient import agent_client, is_ack, start_visitor, visitor_client


async def emit_events(runtime: Runtime, tenant_id: str, count: int) -> list[int]:
    """Commit ``count`` typing events through a unit of work (the server's sweeper publishes them)."""
    uow = runtime.unit_of_work()
    try:
        for i in range(count):
            uow.emit(ev.TYPING, tenant_id=tenant_id, data={"typing": True, "n": i})
        events = await uow.commit()
    finally:
        await uow.session.close()
    return [e.id for e in events]


async def test_slow_agent_is_closed_and_resumes_while_others_keep_receiving(
        sqlite_url: str, runtime: Runtime, tenant: TenantFixture) -> None:
    node = LiveServer(make_settings(sqlite_url)).start()
    try:
        node.app.state.hub.queue_limits["agent"] = 2  # a tiny queue makes any burst overflow it
        session = await start_visitor(runtime, tenant.inbox_id)
        visitor, _, _ = await visitor_client(node.ws_url, session.visitor_token)
        agent, registered, _ = await agent_client(node.ws_url, tenant.agent.token)
        bodies = [f"burst {i}" for i in range(40)]
        for body in bodies:
            await visitor.send({"type": "message.send", "id": f"id-{body}", "data": {"body": body}})
        for body in bodies:  # the visitor (a different connection) is not held back by the slow agent
            assert (await visitor.wait_for(is_ack(f"id-{body}")))["type"] == "message.ack"
        code, frames = await agent.closed()
        assert code == CLOSE_SLOW_CONSUMER
        got = [f for f in agent.received if isinstance(f.get("id"), int)]
        last = max([registered["data"]["last_event_id"], *(f["id"] for f in got)])

        node.app.state.hub.queue_limits["agent"] = 8192
        again, _, replayed = await agent_client(node.ws_url, tenant.agent.token, resume_from=last)
        delivered = [f["data"]["message"]["body"] for f in got + replayed if f["type"] == "message.created"]
        assert sorted(delivered) == sorted(bodies), "every message exactly once across the two connections"
        await again.close()
        await visitor.close()
    finally:
        node.stop()


async def test_duplicate_publication_is_delivered_once(server: LiveServer, runtime: Runtime,
                                                       tenant: TenantFixture) -> None:
    agent, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    (event_id,) = await emit_events(runtime, tenant.id, 1)
    # Nobody published it (this test's runtime has no subscribers), so the server's outbox sweeper does.
    first = await agent.wait_for(lambda f: f.get("id") == event_id, timeout=10)
    assert first["type"] == ev.TYPING
    async with runtime.sessionmaker() as db:
        row = await db.get(OutboxEvent, event_id)
        event = to_event(row)
    bus = server.app.state.runtime.bus
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(bus.publish([event, event]), server.loop))
    assert [f for f in await agent.sync() if f.get("id") == event_id] == []
    await agent.close()


async def test_too_many_missed_events_asks_for_resync(server: LiveServer, runtime: Runtime,
                                                      tenant: TenantFixture) -> None:
    async with runtime.sessionmaker() as db:
        before = await db.scalar(select(func.max(OutboxEvent.id))) or 0
    ids = await emit_events(runtime, tenant.id, 1001)
    agent, registered, frames = await agent_client(server.ws_url, tenant.agent.token, resume_from=before)
    assert [f["type"] for f in frames] == ["resync_required"]
    assert frames[0]["data"]["last_event_id"] == registered["data"]["last_event_id"] >= ids[-1]
    await agent.close()

    # Exactly the limit still replays.
    agent, registered, frames = await agent_client(server.ws_url, tenant.agent.token, resume_from=ids[0])
    assert [f["id"] for f in frames] == ids[1:] and registered["data"]["last_event_id"] == ids[-1]
    await agent.close()


async def test_visitor_does_not_see_other_contacts_or_typing_of_others(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    alice = await start_visitor(runtime, tenant.inbox_id)
    bob = await start_visitor(runtime, tenant.inbox_id)
    a, _, _ = await visitor_client(server.ws_url, alice.visitor_token)
    b, _, _ = await visitor_client(server.ws_url, bob.visitor_token)
    key = uuid.uuid4().hex
    await a.send({"type": "message.send", "id": "a1", "data": {"body": f"alice {key}"}})
    await a.wait_for(is_ack("a1"))
    assert [f for f in await b.sync() if key in str(f)] == []
    await a.close()
    await b.close()
