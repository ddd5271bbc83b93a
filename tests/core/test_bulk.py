"""The hot path's set-based writes store exactly what SQLAlchemy Core stores, on SQLite and PostgreSQL; on the
group committer's connection they are read back inside their transaction and a failing one stores nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from kefu.contacts import actions as contact_actions
from kefu.conversations import actions as conversation_actions
from kefu.conversations.models import Conversation, Message
from kefu.core.bulk import insert_rows, update_rows
from kefu.core.db import create_sessionmaker
from kefu.events.group_commit import GroupCommitter
from kefu.events.types import DomainEvent
from kefu.runtime import build_runtime
from tests.conftest import close_runtime, make_settings
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
        await close_runtime(runtime)


async def test_rows_queued_on_the_committers_connection_are_read_in_their_transaction_and_stored_at_commit(
        db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    tenant = await create_tenant(runtime)
    conversation_id = await _conversation(runtime, tenant.id, tenant.inbox_id)
    # The committer's own connection (SQLite: statements queued until the commit, kefu.core.sqlite_inline).
    sessions = create_sessionmaker(runtime.commit_engine or runtime.engine)
    rows = [{**_row(tenant.id, conversation_id, n % 60, [{"n": n}] if n % 3 else []), "client_message_id": f"q-{n}"}
            for n in range(300)]
    mine = _messages.c.conversation_id == conversation_id
    try:
        async with sessions() as session:
            await insert_rows(session, _messages, rows)  # more rows than one statement takes
            assert await session.scalar(select(func.count()).where(mine)) == 300, "read back before the commit"
            await update_rows(session, Conversation.__table__, [
                {"id": conversation_id, "last_message_preview": "first", "message_count": 1},
                {"id": conversation_id, "last_message_preview": "last", "message_count": 300}])
            await session.commit()
        async with runtime.sessionmaker() as session:
            stored = {r.id: r for r in (await session.execute(select(_messages).where(mine))).all()}
            conversation = await session.get(Conversation, conversation_id)
        assert set(stored) == {row["id"] for row in rows}
        for row in rows:
            got = stored[row["id"]]
            assert (got.body, got.attachments, got.created_at, got.private) == \
                (row["body"], row["attachments"], row["created_at"], row["private"])
        assert (conversation.last_message_preview, conversation.message_count) == ("last", 300), "the last row wins"

        async with sessions() as session:  # a queued row that breaks the primary key: nothing of it is stored
            try:  # SQLite refuses it at the commit, PostgreSQL at once
                await insert_rows(session, _messages, [  # enough rows to commit on the worker thread
                    {**_row(tenant.id, conversation_id, 1, []), "client_message_id": f"f-{n}"} for n in range(250)]
                    + [{**rows[0], "body": "overwritten?"}])
                await session.commit()
            except IntegrityError:
                await session.rollback()
            else:
                raise AssertionError("the duplicate id was accepted")
        async with sessions() as session:  # queued rows of a transaction rolled back are dropped with it
            await insert_rows(session, _messages, [_row(tenant.id, conversation_id, 2, [])])
            await session.rollback()
        async with runtime.sessionmaker() as session:
            assert await session.scalar(select(func.count()).where(mine)) == 300
            assert await session.scalar(select(_messages.c.body).where(_messages.c.id == rows[0]["id"])) == rows[0]["body"]
    finally:
        await runtime.stop()


@pytest.mark.parametrize("size", [6, 300])  # committed on the loop's thread, and on the worker's (SQLite)
async def test_a_batch_whose_write_fails_at_the_commit_is_rerun_item_by_item(db_url: str, size: int) -> None:
    runtime = build_runtime(make_settings(db_url))
    tenant = await create_tenant(runtime)
    conversation_id = await _conversation(runtime, tenant.id, tenant.inbox_id)
    published: list[DomainEvent] = []
    runtime.bus.subscribe(published.append)
    committer = GroupCommitter(create_sessionmaker(runtime.commit_engine or runtime.engine), runtime.relay,
                               max_batch=512)
    taken = _row(tenant.id, conversation_id, 0, [])
    async with runtime.sessionmaker() as session:
        await insert_rows(session, _messages, [taken])
        await session.commit()

    async def write(uow, items):  # type: ignore[no-untyped-def]
        for item in items:
            uow.emit("test.written", tenant_id=tenant.id, data={"id": item["id"]})
        await insert_rows(uow.session, _messages, list(items))
        return [item["id"] for item in items]

    items = [{**_row(tenant.id, conversation_id, n % 60, []), "client_message_id": f"b-{n}"} for n in range(1, size)]
    items.insert(2, {**taken, "body": "a second row with a taken id"})
    try:
        results = await asyncio.gather(*(committer.run_batched(write, item) for item in items),
                                       return_exceptions=True)
        assert isinstance(results[2], IntegrityError)
        assert [r for i, r in enumerate(results) if i != 2] == [item["id"] for i, item in enumerate(items) if i != 2]
        assert committer.batches == 1 and committer.items == size, "one batch, its straight run rolled back"
        async with runtime.sessionmaker() as session:
            stored = dict((await session.execute(select(_messages.c.id, _messages.c.body).where(
                _messages.c.conversation_id == conversation_id))).all())
        assert stored == {item["id"]: item["body"] for i, item in enumerate(items) if i != 2} | {taken["id"]: taken["body"]}
        assert sorted(e.data["id"] for e in published if e.type == "test.written") == \
            sorted(item["id"] for i, item in enumerate(items) if i != 2)
    finally:
        await runtime.stop()


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
