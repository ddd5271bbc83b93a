"""One group-commit batch of widget messages: each item gets its own outcome, and the batch stays consistent."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from kefu.channels import actions as channel_actions
from kefu.channels import visitor_tokens
from kefu.channels.schemas import InboxCreate, InboxUpdate, WidgetSessionCreate
from kefu.conversations.models import Conversation, Message
from kefu.core.errors import NotFound, ValidationFailed
from kefu.events.models import OutboxEvent
from kefu.routing.models import Task
from kefu.runtime import build_runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.schemas import TenantCreate
from tests.conftest import close_runtime, make_settings


async def _shop(uow, name: str):  # type: ignore[no-untyped-def]
    """A new tenant with one web chat inbox (in ``uow``, not committed)."""
    tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=f"{name[:2]}-{uuid.uuid4().hex[:10]}",
                                                                          name=name))
    return tenant, await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="web"))


async def _visitors(runtime, uow, inbox_ids: list[str], *, locale: str) -> list:  # type: ignore[no-untyped-def]
    """One widget visitor per inbox id (repeat an id for several), as the claims of their tokens."""
    claims = []
    for inbox_id in inbox_ids:
        session = await channel_actions.do_start_widget_session(
            uow, settings=runtime.settings, data=WidgetSessionCreate(inbox_id=inbox_id), locale=locale)
        claims.append(visitor_tokens.verify(runtime.settings.secret_key, session.visitor_token))
    return claims


async def test_a_mixed_batch_gives_each_item_its_own_outcome(db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    try:
        uow = runtime.unit_of_work()
        tenant, inbox = await _shop(uow, "batch")
        closed_inbox = await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="old"))
        claims = await _visitors(runtime, uow, [inbox.id, inbox.id, closed_inbox.id], locale="zh")
        await channel_actions.do_update_inbox(uow, inbox=closed_inbox, data=InboxUpdate(is_active=False))
        await uow.commit()
        await uow.session.close()
        a, b, gone = claims

        post = channel_actions.VisitorPost
        outcomes = await runtime.committer.run_batched_many(channel_actions.do_post_visitor_messages, [
            post(claims=a, body="第一条", client_message_id="a1"),
            post(claims=a, body="second in the same batch", client_message_id="a2"),
            post(claims=b, body="twice", client_message_id="b1"),
            post(claims=b, body="twice", client_message_id="b1"),
            post(claims=gone, body="to a disabled inbox", client_message_id="g1"),
            post(claims=b, body="   ", client_message_id="b2"),
        ])
        assert [o[1] if isinstance(o, tuple) else type(o) for o in outcomes] == [
            True, True, True, False, NotFound, ValidationFailed]
        assert outcomes[2][0].id == outcomes[3][0].id  # the repeated client id is one message
        assert outcomes[0][0].conversation_id == outcomes[1][0].conversation_id  # one conversation for a

        async with runtime.sessionmaker() as session:
            conversations = (await session.scalars(select(Conversation).where(
                Conversation.contact_id.in_([a.contact_id, b.contact_id])))).all()
            assert sorted(c.message_count for c in conversations) == [1, 2]
            stored = await session.scalar(select(func.count()).select_from(Message).where(
                Message.conversation_id.in_([c.id for c in conversations])))
            assert stored == 3
            events = (await session.scalars(select(OutboxEvent.type).where(
                OutboxEvent.conversation_id.in_([c.id for c in conversations])))).all()
            assert sorted(events) == ["conversation.created"] * 2 + ["message.created"] * 3
            # Each conversation opened in the batch waits in routing with one task of its own.
            tasks = (await session.scalars(select(Task).where(
                Task.conversation_id.in_([c.id for c in conversations])))).all()
            assert sorted((t.live_conversation_id, t.status, t.attributes["inbox_id"]) for t in tasks) == sorted(
                (c.id, "waiting", inbox.id) for c in conversations)
            assert [(c.status, c.owner_kind) for c in conversations] == [("open", "queue")] * 2
    finally:
        await close_runtime(runtime)


async def test_a_refused_first_message_opens_no_conversation(db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    try:
        uow = runtime.unit_of_work()
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=f"e-{uuid.uuid4().hex[:10]}",
                                                                              name="empty"))
        inbox = await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="web"))
        session = await channel_actions.do_start_widget_session(
            uow, settings=runtime.settings, data=WidgetSessionCreate(inbox_id=inbox.id), locale="en")
        await uow.commit()
        await uow.session.close()
        claims = visitor_tokens.verify(runtime.settings.secret_key, session.visitor_token)
        [outcome] = await runtime.committer.run_batched_many(
            channel_actions.do_post_visitor_messages,
            [channel_actions.VisitorPost(claims=claims, body="  ", client_message_id="e1")])
        assert isinstance(outcome, ValidationFailed)
        async with runtime.sessionmaker() as db:
            opened = await db.scalar(select(func.count()).select_from(Conversation).where(
                Conversation.contact_id == claims.contact_id))
        assert opened == 0
    finally:
        await close_runtime(runtime)


async def test_concurrent_first_sessions_of_one_customer_make_one_contact(db_url: str) -> None:
    """Two tabs (or two nodes) of a new signed-in customer at once: no error, one contact."""
    import asyncio

    from kefu.channels.identity import hmac_sha256_hex

    runtime = build_runtime(make_settings(db_url))
    try:
        uow = runtime.unit_of_work()
        _, inbox = await _shop(uow, "race")
        await uow.commit()
        await uow.session.close()
        customer = f"cust-{uuid.uuid4().hex[:8]}"
        data = WidgetSessionCreate(inbox_id=inbox.id, external_id=customer,
                                   identity_hash=hmac_sha256_hex(inbox.identity_secret, customer))

        async def start() -> str:
            uow = runtime.unit_of_work()
            try:
                started = await channel_actions.do_start_widget_session(uow, settings=runtime.settings, data=data,
                                                                         locale="en")
                await uow.commit()
                return started.contact_id
            finally:
                await uow.session.close()

        contact_ids = await asyncio.gather(*(start() for _ in range(6)))
        assert len(set(contact_ids)) == 1
    finally:
        await close_runtime(runtime)


async def test_a_batch_into_existing_conversations_saves_each_one_once(db_url: str) -> None:
    """Existing conversations are updated by the batch writer itself: counts, preview, a pending one reopened,
    and the version the events carry is the version stored."""
    runtime = build_runtime(make_settings(db_url))
    try:
        uow = runtime.unit_of_work()
        _, inbox = await _shop(uow, "existing")
        claims = await _visitors(runtime, uow, [inbox.id, inbox.id], locale="en")
        await uow.commit()
        await uow.session.close()
        a, b = claims
        post = channel_actions.VisitorPost
        await runtime.committer.run_batched_many(channel_actions.do_post_visitor_messages, [
            post(claims=a, body="first a", client_message_id="a1"), post(claims=b, body="first b", client_message_id="b1")])
        async with runtime.sessionmaker() as session:
            parked = await session.scalar(select(Conversation).where(Conversation.contact_id == b.contact_id))
            parked.status = "pending"
            await session.commit()

        outcomes = await runtime.committer.run_batched_many(channel_actions.do_post_visitor_messages, [
            post(claims=a, body="again a", client_message_id="a2"),
            post(claims=b, body="back again", client_message_id="b2"),
            post(claims=a, body="last a", client_message_id="a3"),
        ])
        assert [o[1] for o in outcomes] == [True, True, True]
        async with runtime.sessionmaker() as session:
            stored = {c.contact_id: c for c in await session.scalars(select(Conversation).where(
                Conversation.contact_id.in_([a.contact_id, b.contact_id])))}
            events = (await session.scalars(select(OutboxEvent).where(
                OutboxEvent.conversation_id.in_([c.id for c in stored.values()]),
                OutboxEvent.type == "message.created").order_by(OutboxEvent.id))).all()
        conv_a, conv_b = stored[a.contact_id], stored[b.contact_id]
        assert (conv_a.message_count, conv_a.last_message_preview, conv_a.status) == (3, "last a", "open")
        assert (conv_b.message_count, conv_b.last_message_preview, conv_b.status) == (2, "back again", "open")
        latest = {e.conversation_id: e.data["conversation"] for e in events}
        assert latest[conv_a.id]["version"] == conv_a.version and latest[conv_b.id]["version"] == conv_b.version
        assert latest[conv_b.id]["status"] == "open"
    finally:
        await close_runtime(runtime)
