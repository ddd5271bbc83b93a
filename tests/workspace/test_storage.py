"""The workspace queries on both databases: search with LIKE metacharacters, last-activity order, unread
counts, canned search, and the CSAT report (SQLite and PostgreSQL differ in exactly these corners)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu.canned import actions as canned_actions
from kefu.canned import service as canned_service
from kefu.canned.schemas import CannedResponseCreate
from kefu.channels import actions as channel_actions
from kefu.channels import visitor_tokens
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.feedback import actions as feedback_actions
from kefu.feedback import service as feedback_service
from kefu.runtime import Runtime
from tests.conftest import runtime_on
from tests.factories import create_tenant
from tests.realtime.wsclient import start_visitor


@pytest.fixture
async def db_runtime(db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(db_url) as runtime:
        yield runtime


async def _say(runtime: Runtime, token: str, body: str) -> tuple[str, str]:
    claims = visitor_tokens.verify(runtime.settings.secret_key, token)
    uow = runtime.unit_of_work()
    try:
        message, _ = await channel_actions.do_post_visitor_message(uow, claims=claims, body=body,
                                                                   client_message_id=None)
        await uow.commit()
    finally:
        await uow.session.close()
    return message.conversation_id, message.id


async def test_workspace_queries_on_both_databases(db_runtime: Runtime) -> None:
    runtime = db_runtime
    tenant = await create_tenant(runtime)
    one = await start_visitor(runtime, tenant.inbox_id)
    two = await start_visitor(runtime, tenant.inbox_id)
    conv_one, first = await _say(runtime, one.visitor_token, "100% 满意_test")
    conv_two, _ = await _say(runtime, two.visitor_token, "1000 pieces")
    _, last = await _say(runtime, one.visitor_token, "again")

    async with runtime.sessionmaker() as session:
        def search(text: str):  # type: ignore[no-untyped-def]
            return conversation_service.list_conversations(session=session, tenant_id=tenant.id, text=text)

        assert [c.id for c in await search("100%")] == [conv_one]  # % is a literal, not a wildcard
        assert [c.id for c in await search("满意_T")] == [conv_one]
        assert [c.id for c in await search("0_")] == []
        ordered = await conversation_service.list_conversations(session=session, tenant_id=tenant.id,
                                                                sort="last_activity")
        assert [c.id for c in ordered] == [conv_one, conv_two]
        after = await conversation_service.list_conversations(
            session=session, tenant_id=tenant.id, sort="last_activity",
            after_activity=ordered[0].last_message_at, after_id=ordered[0].id)
        assert [c.id for c in after] == [conv_two]
        counts = await conversation_service.unread_counts(session=session, user_id=tenant.agent.id,
                                                          conversation_ids=[conv_one, conv_two])
        assert counts == {conv_one: 2, conv_two: 1}
        conversation = await conversation_service.access_conversation(session=session, tenant_id=tenant.id,
                                                                      conversation_id=conv_one)

    uow = runtime.unit_of_work()
    try:
        conversation = await conversation_service.access_conversation(session=uow.session, tenant_id=tenant.id,
                                                                      conversation_id=conv_one)
        assert await conversation_actions.do_advance_read_marker(
            uow, conversation=conversation, user_id=tenant.agent.id, up_to_message_id=first) == first
        assert await conversation_actions.do_advance_read_marker(
            uow, conversation=conversation, user_id=tenant.agent.id, up_to_message_id=last) == last
        await conversation_actions.do_change_status(uow, conversation=conversation, status="resolved")
        await feedback_actions.do_rate(uow, conversation=conversation, rating=4, comment=None)
        await canned_actions.do_create_canned(uow, tenant_id=tenant.id, owner_key="shared", created_by="x",
                                              data=CannedResponseCreate(shortcut="a_b", title="T", body_en="x"))
        await canned_actions.do_create_canned(uow, tenant_id=tenant.id, owner_key="shared", created_by="x",
                                              data=CannedResponseCreate(shortcut="axb", title="T", body_en="y"))
        await uow.commit()
    finally:
        await uow.session.close()

    async with runtime.sessionmaker() as session:
        total = await conversation_service.unread_total(session=session, tenant_id=tenant.id,
                                                        user_id=tenant.agent.id, assignee_id=None)
        assert total == (1, 1)  # conv_one is resolved now (and read); conv_two's message remains
        report = await feedback_service.report(session=session, tenant_id=tenant.id, period="week")
        assert (report.count, report.average) == (1, "4.00") and report.by_period[0].period.count("-W") == 1
        found = await canned_service.list_canned(session=session, tenant_id=tenant.id, user_id=None,
                                                 shortcut_prefix="a_")
        assert [r.shortcut for r in found] == ["a_b"]
