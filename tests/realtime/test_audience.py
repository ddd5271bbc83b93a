"""Who gets which event: a plain agent gets the chat traffic of their own and of unassigned conversations,
and only their own routing offers; supervisors and admins watch the whole tenant. Live and replayed alike."""

from __future__ import annotations

import uuid

from kefu.events import types as ev
from kefu.runtime import Runtime
from tests.conftest import LiveServer
from tests.factories import TenantFixture, create_user
from tests.realtime.wsclient import agent_client, is_ack, is_message, start_visitor, visitor_client


def bodies(frames: list[dict]) -> list[str]:
    return [f["data"]["message"]["body"] for f in frames if f["type"] == "message.created"]


async def test_assigned_conversations_reach_their_agent_and_supervisors_only(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    other = await create_user(runtime, tenant.id, "agent")
    mine, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    theirs, registered, _ = await agent_client(server.ws_url, other.token)
    boss, _, _ = await agent_client(server.ws_url, tenant.supervisor.token)
    session = await start_visitor(runtime, tenant.inbox_id)
    visitor, _, _ = await visitor_client(server.ws_url, session.visitor_token)
    key = uuid.uuid4().hex[:8]

    # Unassigned: every agent may pick it up, so everybody sees it.
    await visitor.send({"type": "message.send", "id": "q1", "data": {"body": f"hello {key}"}})
    for client in (mine, theirs, boss):
        created = await client.wait_for(is_message(f"hello {key}"))
    conversation_id = created["data"]["message"]["conversation_id"]

    # The first agent to answer takes it; the other agent still learns that it is taken.
    await mine.send({"type": "message.send", "id": "r1",
                     "data": {"conversation_id": conversation_id, "body": f"on it {key}"}})
    assert (await mine.wait_for(is_ack("r1")))["type"] == "message.ack"
    taken = await theirs.wait_for(lambda f: f["type"] == ev.CONVERSATION_UPDATED
                                  and f["data"]["conversation"]["assignee_id"] == tenant.agent.id)
    assert taken["data"]["conversation"]["id"] == conversation_id

    await visitor.send({"type": "message.send", "id": "q2", "data": {"body": f"thanks {key}"}})
    await mine.wait_for(is_message(f"thanks {key}"))
    await boss.wait_for(is_message(f"thanks {key}"))
    assert (await visitor.wait_for(is_ack("q2")))["data"]["message"]["body"] == f"thanks {key}"
    assert [b for b in bodies(await theirs.sync()) if key in b] == []

    # A reconnect replays the same view: the other agent's resume skips the assigned conversation's messages.
    await theirs.close()
    theirs, _, replayed = await agent_client(server.ws_url, other.token,
                                             resume_from=registered["data"]["last_event_id"])
    assert [b for b in bodies(replayed) if key in b] == [f"hello {key}"]
    assert any(f["type"] == ev.CONVERSATION_UPDATED and f["data"]["conversation"]["id"] == conversation_id
               for f in replayed)
    _, _, boss_replay = await agent_client(server.ws_url, tenant.supervisor.token,
                                           resume_from=registered["data"]["last_event_id"])
    assert [b for b in bodies(boss_replay) if key in b] == [f"hello {key}", f"on it {key}", f"thanks {key}"]
    for client in (mine, theirs, boss, visitor):
        await client.close()


async def test_a_routing_offer_goes_to_the_offered_agent_and_supervisors(
        server: LiveServer, runtime: Runtime, tenant: TenantFixture) -> None:
    other = await create_user(runtime, tenant.id, "agent")
    mine, _, _ = await agent_client(server.ws_url, tenant.agent.token)
    theirs, _, _ = await agent_client(server.ws_url, other.token)
    admin, _, _ = await agent_client(server.ws_url, tenant.admin.token)
    offer_id = f"off_{uuid.uuid4().hex[:12]}"
    uow = runtime.unit_of_work()
    try:
        uow.emit(ev.ROUTING_OFFER_CREATED, tenant_id=tenant.id,
                 data={"offer": {"id": offer_id, "agent_id": other.id, "status": "pending"}, "agent_id": other.id,
                       "conversation_id": None})
        uow.emit(ev.ROUTING_TASK_CREATED, tenant_id=tenant.id, data={"task": {"id": f"task-{offer_id}"}})
        await uow.commit()
    finally:
        await uow.session.close()
    # This test's runtime has no subscribers: the server's outbox sweeper publishes the rows.
    for client in (theirs, admin):
        offered = await client.wait_for(lambda f: f["type"] == ev.ROUTING_OFFER_CREATED
                                        and f["data"]["offer"]["id"] == offer_id, timeout=10)
        assert offered["data"]["agent_id"] == other.id
    task = await mine.wait_for(lambda f: f["type"] == ev.ROUTING_TASK_CREATED
                               and f["data"]["task"]["id"] == f"task-{offer_id}", timeout=10)
    assert task["id"] > offered["id"]  # the offer was published before it, and never reached this agent
    assert [f for f in mine.received if offer_id in str(f)] == [task]
    for client in (mine, theirs, admin):
        await client.close()
