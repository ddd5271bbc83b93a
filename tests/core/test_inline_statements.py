"""The chat hot path's statements read the same values on the committer's SQLite connection, where they skip
SQLAlchemy's execution, as through SQLAlchemy: timestamps, booleans, IN lists of any length, constants."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update

from kefu.channels.service import _INBOX_STATES
from kefu.contacts import actions as contact_actions
from kefu.contacts.service import _VISITOR_CONTACTS
from kefu.conversations import actions as conversation_actions
from kefu.conversations.actions import _stored_client_ids
from kefu.conversations.models import Message
from kefu.conversations.service import _CONVERSATION_ROWS, _LIVE_CONVERSATION_ROWS, ConversationRow
from kefu.core.bulk import insert_rows
from kefu.core.db import create_sessionmaker, run_core
from kefu.core.inline_statements import Rows
from kefu.events.outbox import _MARK_RANGE
from kefu.events.uow import _MAX_OUTBOX_ID
from kefu.runtime import build_runtime
from tests.conftest import make_settings
from tests.factories import create_tenant


async def test_hot_statements_read_what_sqlalchemy_reads(sqlite_url: str) -> None:
    runtime = build_runtime(make_settings(sqlite_url))
    assert runtime.commit_engine is not None
    tenant = await create_tenant(runtime)
    visitors = [f"vis_{uuid.uuid4().hex}" for _ in range(3)]
    conversations = []
    for visitor in visitors:
        uow = runtime.unit_of_work()
        contact = await contact_actions.do_resolve_contact(uow, tenant_id=tenant.id,
                                                           identities=[("visitor", visitor, False)])
        conversation = await conversation_actions.do_open_conversation(
            uow, tenant_id=tenant.id, inbox_id=tenant.inbox_id, contact_id=contact.id, channel="webchat")
        conversations.append((contact.id, conversation.id))
        await uow.commit()
        await uow.session.close()
    contact_ids = [contact for contact, _ in conversations]
    conversation_ids = [conversation for _, conversation in conversations]
    cases = [
        (_INBOX_STATES, {"ids": [tenant.inbox_id, "inb_missing"]}),
        (_VISITOR_CONTACTS, {"values": visitors[:1]}),
        (_VISITOR_CONTACTS, {"values": visitors}),
        (_LIVE_CONVERSATION_ROWS, {"contact_ids": contact_ids}),  # with its constant IN ('open', 'pending')
        (_CONVERSATION_ROWS, {"ids": conversation_ids[:2]}),
        (_MAX_OUTBOX_ID, None),
        (_stored_client_ids(2), {"c0": conversation_ids[0], "s0": "agent", "m0": "inline-1",
                                 "c1": conversation_ids[1], "s1": "agent", "m1": "nope"}),
    ]
    inline = create_sessionmaker(runtime.commit_engine)
    try:
        async with inline() as session:
            # A row queued for the commit is read by the statements after it (kefu.core.sqlite_inline).
            await insert_rows(session, Message.__table__, [{
                "id": f"msg_inline{uuid.uuid4().hex[:18]}", "tenant_id": tenant.id, "conversation_id": conversation_ids[0],
                "sender_kind": "agent", "sender_id": None, "body": "好的", "content_type": "text", "attachments": [],
                "private": False, "client_message_id": "inline-1", "delivery_status": "sent",
                "created_at": datetime.now(UTC)}])
            for statement, params in cases:
                mine = await run_core(session, statement, params)
                assert isinstance(mine, Rows), "run on the inline connection, not through SQLAlchemy"
                theirs = (await (await session.connection()).execute(statement, params)).all()
                assert [tuple(row) for row in theirs] == list(mine)
                assert theirs, f"the case reads something: {statement}"
            rows = await run_core(session, _CONVERSATION_ROWS, {"ids": conversation_ids[:1]})
            assert ConversationRow(rows[0]).created_at.tzinfo is UTC
            assert (await run_core(session, _INBOX_STATES, {"ids": [tenant.inbox_id]}))[0][2] is True
            table = _MARK_RANGE.table
            top = (await run_core(session, _MAX_OUTBOX_ID)).scalar()
            await session.execute(update(table).where(table.c.id.in_([top - 1, top])).values(published_at=None))
            now = datetime.now(UTC)
            await run_core(session, _MARK_RANGE, [{"low": top - 1, "high": top - 1, "now": now},
                                                  {"low": top, "high": top, "now": now}])  # once per set
            marked = (await session.execute(select(table.c.published_at).where(table.c.id.in_([top - 1, top])))).all()
            assert [row[0] for row in marked] == [now, now]
            await session.rollback()
    finally:
        await runtime.stop()
