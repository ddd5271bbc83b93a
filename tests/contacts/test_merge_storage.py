"""Merging and reverting contacts at the storage level, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from kefu.audit.models import AuditEntry
from kefu.channels import actions as channel_actions
from kefu.channels.schemas import InboxCreate
from kefu.contacts import actions as contact_actions
from kefu.contacts import service as contact_service
from kefu.contacts.models import Contact, ContactIdentity, ContactMerge
from kefu.conversations import actions as conversation_actions
from kefu.conversations.models import Conversation
from kefu.core.errors import Conflict, ValidationFailed
from kefu.runtime import Runtime
from tests.conftest import runtime_on
from tests.factories import TenantFixture, create_tenant


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(db_url) as runtime:
        yield runtime


async def _customer(runtime: Runtime, tenant: TenantFixture, *identities: tuple[str, str, bool]) -> str:
    """A contact resolved from ``identities`` with one conversation holding one message."""
    uow = runtime.unit_of_work()
    try:
        contact = await contact_actions.do_resolve_contact(uow, tenant_id=tenant.id, identities=list(identities))
        conversation = await conversation_actions.do_open_conversation(
            uow, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=contact.id, channel="webchat")
        await conversation_actions.do_post_message(uow, conversation=conversation, sender_kind="customer",
                                                   sender_id=contact.id, body="hi")
        await uow.commit()
        return contact.id
    finally:
        await uow.session.close()


async def _snapshot(runtime: Runtime, tenant_id: str) -> dict[str, Any]:
    """Who owns what: each contact's merged_into_id, identities and conversations."""
    async with runtime.sessionmaker() as session:
        contacts = (await session.scalars(select(Contact).where(Contact.tenant_id == tenant_id))).all()
        identities = (await session.execute(
            select(ContactIdentity.id, ContactIdentity.contact_id).where(ContactIdentity.tenant_id == tenant_id))).all()
        conversations = (await session.execute(
            select(Conversation.id, Conversation.contact_id).where(Conversation.tenant_id == tenant_id))).all()
    return {
        c.id: (c.merged_into_id, sorted(i for i, owner in identities if owner == c.id),
               sorted(v for v, owner in conversations if owner == c.id))
        for c in contacts
    }


async def _merge(runtime: Runtime, tenant_id: str, target_id: str, source_id: str) -> str:
    uow = runtime.unit_of_work()
    try:
        target = await contact_service.access_contact(session=uow.session, tenant_id=tenant_id, contact_id=target_id)
        source = await contact_service.access_contact(session=uow.session, tenant_id=tenant_id, contact_id=source_id)
        merge = await contact_actions.do_merge_contacts(uow, target=target, source=source, actor=None)
        events = await uow.commit()
        assert [e.type for e in events].count("contact.merged") == 1
        return merge.id
    finally:
        await uow.session.close()


async def _revert(runtime: Runtime, tenant_id: str, merge_id: str) -> None:
    uow = runtime.unit_of_work()
    try:
        merge = await contact_service.access_merge(session=uow.session, tenant_id=tenant_id, merge_id=merge_id)
        await contact_actions.do_revert_merge(uow, merge=merge, actor=None)
        await uow.commit()
    finally:
        await uow.session.close()


async def test_merge_then_revert_restores_exactly_the_previous_state(store: Runtime) -> None:
    tenant = await create_tenant(store)
    anonymous = await _customer(store, tenant, ("visitor", f"vis_{uuid.uuid4().hex}", False),
                                ("email", "Buyer@Example.com", False))
    customer = await _customer(store, tenant, ("external", "shop-7", True), ("visitor", "vis_b", False))
    bystander = await _customer(store, tenant, ("phone", "+8613700000000", False))
    before = await _snapshot(store, tenant.id)

    merge_id = await _merge(store, tenant.id, customer, anonymous)
    during = await _snapshot(store, tenant.id)
    assert during[anonymous] == (customer, [], [])
    assert during[customer][1] == sorted(before[customer][1] + before[anonymous][1])
    assert during[customer][2] == sorted(before[customer][2] + before[anonymous][2])
    assert during[bystander] == before[bystander]
    async with store.sessionmaker() as session:
        record = await session.get(ContactMerge, merge_id)
        assert record is not None
        assert sorted(record.moved_identity_ids) == before[anonymous][1]
        assert record.moved_conversation_ids == before[anonymous][2]
    # Messages from the anonymous visitor's identity now resolve to the customer.
    uow = store.unit_of_work()
    try:
        resolved = await contact_actions.do_resolve_contact(
            uow, tenant_id=tenant.id, identities=[("email", "buyer@example.com", False)])
        assert resolved.id == customer
    finally:
        await uow.session.close()

    await _revert(store, tenant.id, merge_id)
    assert await _snapshot(store, tenant.id) == before
    with pytest.raises(Conflict) as again:
        await _revert(store, tenant.id, merge_id)
    assert again.value.code == "merge_already_reverted"
    async with store.sessionmaker() as session:
        actions = (await session.scalars(
            select(AuditEntry.action).where(AuditEntry.tenant_id == tenant.id).order_by(AuditEntry.seq))).all()
    assert [a for a in actions if a.startswith("contact.")] == ["contact.merged", "contact.merge_reverted"]


async def test_revert_leaves_conversations_started_after_the_merge(store: Runtime) -> None:
    tenant = await create_tenant(store)
    source = await _customer(store, tenant, ("visitor", f"vis_{uuid.uuid4().hex}", False))
    target = await _customer(store, tenant, ("external", "shop-8", True))
    before = await _snapshot(store, tenant.id)
    merge_id = await _merge(store, tenant.id, target, source)
    uow = store.unit_of_work()
    try:
        email = await channel_actions.do_create_inbox(uow, tenant_id=tenant.id, data=InboxCreate(name="Email"))
        newer = await conversation_actions.do_open_conversation(
            uow, tenant_id=tenant.id, inbox_id=email.id, contact_id=target, channel="email")
        await uow.commit()
    finally:
        await uow.session.close()
    await _revert(store, tenant.id, merge_id)
    after = await _snapshot(store, tenant.id)
    assert after[source] == before[source]
    assert after[target] == (None, before[target][1], sorted(before[target][2] + [newer.id]))


async def test_merge_refuses_itself_and_already_merged_contacts(store: Runtime) -> None:
    tenant = await create_tenant(store)
    a = await _customer(store, tenant, ("visitor", f"vis_{uuid.uuid4().hex}", False))
    b = await _customer(store, tenant, ("visitor", f"vis_{uuid.uuid4().hex}", False))
    c = await _customer(store, tenant, ("visitor", f"vis_{uuid.uuid4().hex}", False))
    with pytest.raises(ValidationFailed):
        await _merge(store, tenant.id, a, a)
    await _merge(store, tenant.id, b, a)
    for target, source in ((c, a), (a, c)):
        with pytest.raises(Conflict) as refused:
            await _merge(store, tenant.id, target, source)
        assert refused.value.code == "contact_merged"
