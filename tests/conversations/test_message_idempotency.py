"""Idempotent message posting under concurrency, at the storage level, on SQLite and PostgreSQL.

Each sender has its own connection and transaction, as two nodes or two requests would, so on PostgreSQL
the twins really race to insert the same client message id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from kefu.channels import actions as channel_actions
from kefu.channels.visitor_tokens import VisitorClaims
from kefu.contacts import actions as contact_actions
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.conversations.models import Message
from kefu.conversations.schemas import MessageRead
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import TenantFixture, create_tenant


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(db_url))
    yield runtime
    await runtime.committer.drain()
    await close_runtime(runtime)


async def _visitor(runtime: Runtime, tenant: TenantFixture) -> tuple[VisitorClaims, str]:
    """A visitor contact with an open conversation; returns (claims, conversation id)."""
    uow = runtime.unit_of_work()
    try:
        visitor_id = f"vis_{uuid.uuid4().hex}"
        contact = await contact_actions.do_resolve_contact(uow, tenant_id=tenant.id,
                                                           identities=[("visitor", visitor_id, False)])
        conversation = await conversation_actions.do_open_conversation(
            uow, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=contact.id, channel="webchat")
        await uow.commit()
    finally:
        await uow.session.close()
    claims = VisitorClaims(tenant.id, tenant.inbox_id, contact.id, visitor_id, False, int(time.time()) + 600)
    return claims, conversation.id


async def _count(runtime: Runtime, conversation_id: str, client_message_id: str) -> int:
    async with runtime.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.client_message_id == client_message_id)) or 0


async def test_concurrent_agent_posts_with_one_client_id_make_one_message(store: Runtime) -> None:
    tenant = await create_tenant(store)
    _, conversation_id = await _visitor(store, tenant)
    start = asyncio.Event()

    async def post() -> tuple[MessageRead, bool]:
        uow = store.unit_of_work()
        try:
            conversation = await conversation_service.access_conversation(
                session=uow.session, tenant_id=tenant.id, conversation_id=conversation_id)
            await start.wait()
            result = await conversation_actions.do_post_message(
                uow, conversation=conversation, sender_kind="agent", sender_id=tenant.agent.id, body="稍等",
                client_message_id="same-1")
            await uow.commit()
            return result
        finally:
            await uow.session.close()

    tasks = [asyncio.create_task(post()) for _ in range(10)]
    await asyncio.sleep(0.2)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert len({message.id for message, _ in results}) == 1
    assert await _count(store, conversation_id, "same-1") == 1


async def test_group_committed_visitor_posts_with_one_client_id_make_one_message(store: Runtime) -> None:
    tenant = await create_tenant(store)
    claims, conversation_id = await _visitor(store, tenant)
    results = await asyncio.gather(*(
        store.committer.run(lambda uow: channel_actions.do_post_visitor_message(
            uow, claims=claims, body="在吗", client_message_id="same-2"))
        for _ in range(10)))
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert {message.conversation_id for message, _ in results} == {conversation_id}
    assert await _count(store, conversation_id, "same-2") == 1


async def test_a_batch_answers_repeats_by_exact_key_across_conversations_and_sender_kinds(store: Runtime) -> None:
    """Repeated client ids are found by (conversation, sender kind, client id): the same id in another
    conversation, or from the customer instead of the agent, is a new message; batches longer than one
    lookup (256 keys) are answered too."""
    tenant = await create_tenant(store)
    conversations = [(await _visitor(store, tenant)) for _ in range(3)]
    (claims_a, a), (_, b), (_, c) = conversations

    def agent(conversation_id: str, client_id: str) -> conversation_actions.AgentPost:
        return conversation_actions.AgentPost(tenant_id=tenant.id, conversation_id=conversation_id,
                                              sender_kind="agent", sender_id=tenant.agent.id, body="好的",
                                              client_message_id=client_id)

    async def post(items: list[conversation_actions.AgentPost]) -> list[tuple[MessageRead, bool]]:
        return await store.committer.run(lambda uow: conversation_actions.do_post_agent_messages(uow, items))

    first = await post([agent(a, "k1"), agent(b, "k2")])
    customer, created = await store.committer.run(lambda uow: channel_actions.do_post_visitor_message(
        uow, claims=claims_a, body="在吗", client_message_id="k1"))
    assert created and customer.id not in {m.id for m, _ in first}
    again = await post([agent(a, "k1"), agent(b, "k2"), agent(c, "k1"), agent(a, "k3"), agent(b, "k1")])
    assert [created for _, created in again] == [False, False, True, True, True]
    assert [m.id for m, _ in again[:2]] == [m.id for m, _ in first]
    assert await _count(store, a, "k1") == 2  # the agent's and the customer's

    many = [agent(conversations[i % 3][1], f"n{i}") for i in range(300)]
    stored = await post(many)
    assert all(created for _, created in stored)
    repeated = await post([*many, agent(a, "n-new")])
    assert [created for _, created in repeated] == [False] * 300 + [True]
    assert [m.id for m, _ in repeated[:300]] == [m.id for m, _ in stored]
