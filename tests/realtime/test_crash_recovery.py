"""A node that dies between commit and publish loses nothing: the event is replayed after restart and the
customer's retry with the same client id does not store the message twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from kefu.conversations.models import Message
from tests.conftest import runtime_on
from tests.factories import create_tenant
from tests.realtime.wsclient import agent_client, is_ack, is_message, start_visitor, visitor_client
from tests.serve_process import ServeProcess, free_port

pytestmark = pytest.mark.slow


async def test_event_committed_before_crash_is_delivered_after_restart(fresh_db_url: str, tmp_path: Path) -> None:
    async with runtime_on(fresh_db_url) as runtime:
        tenant = await create_tenant(runtime)
        session = await start_visitor(runtime, tenant.inbox_id)
        log = tmp_path / "serve.log"

        port = free_port()
        faulty = ServeProcess(fresh_db_url, port, log, KEFU_FAULT_CRASH_AFTER_COMMIT="1")
        try:
            await faulty.ready()
            agent, registered, _ = await agent_client(faulty.ws_url, tenant.agent.token)
            last_seen = registered["data"]["last_event_id"]
            visitor, _, _ = await visitor_client(faulty.ws_url, session.visitor_token)
            await visitor.send({"type": "message.send", "id": "crash-1", "data": {"body": "下单后能改地址吗？"}})
            assert await faulty.exit_code() == 70, log.read_text()
            code, frames = await visitor.closed()
            assert not [f for f in frames if f["type"] == "message.ack"], "no ack without publish"
            assert not [f for f in agent.received if f["type"] == "message.created"]
        finally:
            faulty.stop()

        async with runtime.sessionmaker() as db:
            stored = await db.scalar(select(func.count()).select_from(Message)
                                     .where(Message.client_message_id == "crash-1"))
        assert stored == 1, "the commit happened before the crash"

        healthy = ServeProcess(fresh_db_url, free_port(), log)
        try:
            await healthy.ready()
            for resume_from in (last_seen, 0):
                agent, registered, replayed = await agent_client(healthy.ws_url, tenant.agent.token,
                                                                 resume_from=resume_from)
                created = [f for f in replayed if f["type"] == "message.created"]
                assert [f["data"]["message"]["body"] for f in created] == ["下单后能改地址吗？"]
                assert registered["data"]["last_event_id"] == replayed[-1]["id"]
                await agent.close()

            # The customer never got an ack, so the widget retries with the same client id.
            visitor, _, _ = await visitor_client(healthy.ws_url, session.visitor_token)
            await visitor.send({"type": "message.send", "id": "crash-1", "data": {"body": "下单后能改地址吗？"}})
            ack = await visitor.wait_for(is_ack("crash-1"))
            assert ack["type"] == "message.ack" and ack["data"]["created"] is False
            assert not [f for f in await visitor.sync() if is_message("下单后能改地址吗？")(f)]
            await visitor.close()
        finally:
            healthy.stop()

        async with runtime.sessionmaker() as db:
            stored = await db.scalar(select(func.count()).select_from(Message)
                                     .where(Message.client_message_id == "crash-1"))
        assert stored == 1
