"""What the widget's long-poll reads from the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from kefu.channels import actions as channel_actions
from kefu.channels import service as channel_service
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.contacts import actions as contact_actions
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import TenantFixture, create_tenant


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(db_url))
    yield runtime
    await runtime.committer.drain()
    await close_runtime(runtime)


async def _visitor(runtime: Runtime, tenant: TenantFixture) -> VisitorClaims:
    uow = runtime.unit_of_work()
    try:
        visitor_id = f"vis_{uuid.uuid4().hex}"
        contact = await contact_actions.do_resolve_contact(uow, tenant_id=tenant.id,
                                                           identities=[("visitor", visitor_id, False)])
        await uow.commit()
    finally:
        await uow.session.close()
    return VisitorClaims(tenant.id, tenant.inbox_id, contact.id, visitor_id, False, int(time.time()) + 600)


async def _agent_posts(runtime: Runtime, tenant: TenantFixture, conversation_id: str, body: str,
                       private: bool) -> None:
    uow = runtime.unit_of_work()
    try:
        conversation = await conversation_service.access_conversation(
            session=uow.session, tenant_id=tenant.id, conversation_id=conversation_id)
        await conversation_actions.do_post_message(uow, conversation=conversation, sender_kind="agent",
                                                   sender_id=tenant.agent.id, body=body, private=private)
        await uow.commit()
    finally:
        await uow.session.close()


async def test_visitor_sees_their_messages_but_never_notes(store: Runtime) -> None:
    tenant = await create_tenant(store)
    alice, bob = await _visitor(store, tenant), await _visitor(store, tenant)
    sent, _ = await store.committer.run(lambda uow: channel_actions.do_post_visitor_message(
        uow, claims=alice, body="where is my parcel", client_message_id="a1"))
    await store.committer.run(lambda uow: channel_actions.do_post_visitor_message(
        uow, claims=bob, body="bob's question", client_message_id="b1"))
    await _agent_posts(store, tenant, sent.conversation_id, "customer is angry", private=True)
    await _agent_posts(store, tenant, sent.conversation_id, "it ships today", private=False)

    async with store.sessionmaker() as session:
        events, last = await channel_service.visitor_events(
            session=session, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=alice.contact_id, after_id=0)
        bodies = [e.data["message"]["body"] for e in events if e.type == "message.created"]
        assert bodies == ["where is my parcel", "it ships today"]
        assert last == max(e.id for e in events)
        rest, last_again = await channel_service.visitor_events(
            session=session, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=alice.contact_id,
            after_id=last)
        assert rest == [] and last_again == last
        # Rows younger than the settle window wait for the next poll (PostgreSQL commit-order gaps).
        held, held_last = await channel_service.visitor_events(
            session=session, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=alice.contact_id,
            after_id=0, settle_seconds=60)
        assert held == [] and held_last == 0
