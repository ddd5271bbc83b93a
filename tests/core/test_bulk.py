"""The hot path's set-based writes store exactly what SQLAlchemy Core stores, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import insert, select

from kefu.contacts import actions as contact_actions
from kefu.conversations import actions as conversation_actions
from kefu.conversations.models import Conversation, Message
from kefu.core.bulk import insert_rows, update_rows
from kefu.runtime import build_runtime
from tests.conftest import make_settings
from tests.factories import create_tenant

_messages = Message.__table__


def _row(tenant_id: str, conversation_id: str, n: int, attachments: list) -> dict:
    return {"id": f"msg_bulk{uuid.uuid4().hex[:22]}", "tenant_id": tenant_id, "conversation_id": conversation_id,
            "sender_kind": "agent", "sender_id": None, "body": f"您好 {n}", "content_type": "text",
            "attachments": attachments, "private": n % 2 == 0, "client_message_id": f"bulk-{n}",
            "delivery_status": "sent",
            "created_at": datetime(2026, 12, 6, 8, 0, n, 1234 * n, tzinfo=timezone(timedelta(hours=8)))}


async def test_bulk_insert_and_update_read_back_like_core(db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    tenant = await create_tenant(runtime)
    conversation_id = await _conversation(runtime, tenant.id, tenant.inbox_id)
    payloads = [[{"name": "发票.pdf", "size": 1, "ok": True, "dims": [1.5, None]}], [], [{"big": 2**70}]]
    bulk = [_row(tenant.id, conversation_id, n, data) for n, data in enumerate(payloads)]
    core = [{**_row(tenant.id, conversation_id, n + 10, data), "created_at": row["created_at"]}
            for n, (row, data) in enumerate(zip(bulk, payloads, strict=True))]
    try:
        async with runtime.sessionmaker() as session:
            await insert_rows(session, _messages, bulk)
            await (await session.connection()).execute(insert(_messages), core)
            await session.commit()
        async with runtime.sessionmaker() as session:
            got = {r.id: r for r in (await session.execute(select(_messages).where(
                _messages.c.conversation_id == conversation_id))).all()}
        for mine, theirs in zip(bulk, core, strict=True):
            a, b = got[mine["id"]], got[theirs["id"]]
            assert a.attachments == b.attachments == mine["attachments"]
            assert a.created_at == b.created_at == mine["created_at"] and a.created_at.tzinfo is not None
            assert a.private is b.private is mine["private"]

        when = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
        async with runtime.sessionmaker() as session:
            await update_rows(session, Conversation.__table__, [
                {"id": conversation_id, "last_message_at": when, "last_message_preview": "好的", "message_count": 7},
                {"id": "conv_missing", "last_message_at": when, "last_message_preview": "x", "message_count": 1}])
            await session.commit()
        async with runtime.sessionmaker() as session:
            stored = await session.get(Conversation, conversation_id)
            assert (stored.last_message_at, stored.last_message_preview, stored.message_count) == (when, "好的", 7)
    finally:
        await runtime.engine.dispose()


async def _conversation(runtime, tenant_id: str, inbox_id: str) -> str:  # type: ignore[no-untyped-def]
    uow = runtime.unit_of_work()
    try:
        contact = await contact_actions.do_resolve_contact(uow, tenant_id=tenant_id,
                                                           identities=[("visitor", f"vis_{uuid.uuid4().hex}", False)])
        conversation = await conversation_actions.do_open_conversation(
            uow, tenant_id=tenant_id, inbox_id=inbox_id, contact_id=contact.id, channel="webchat")
        await uow.commit()
    finally:
        await uow.session.close()
    return conversation.id
