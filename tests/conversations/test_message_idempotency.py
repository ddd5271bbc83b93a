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
from tests.conftest import make_settings
from tests.factories import TenantFixture, create_tenant


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(db_url))
    yield runtime
    await runtime.committer.drain()
    await runtime.engine.dispose()


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
