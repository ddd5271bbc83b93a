"""An Idempotency-Key whose request died with its node is not locked for the whole TTL: the claim lapses after
the pending lease, the retry runs, and the message the dead request did commit is not stored twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from kefu.api.models import IdempotencyRecord
from kefu.channels import actions as channel_actions
from kefu.channels import visitor_tokens
from kefu.conversations.models import Message
from tests.conftest import TEST_SECRET, runtime_on
from tests.factories import create_tenant
from tests.realtime.wsclient import start_visitor
from tests.serve_process import ServeProcess, free_port

pytestmark = pytest.mark.slow

LEASE_SECONDS = 10  # longer than a restart of `kefu serve` takes here, so the first retry lands inside it


async def test_a_key_left_unanswered_by_a_dead_node_frees_up_after_the_lease(fresh_db_url: str,
                                                                              tmp_path: Path) -> None:
    async with runtime_on(fresh_db_url) as runtime:
        tenant = await create_tenant(runtime)
        session = await start_visitor(runtime, tenant.inbox_id)
        uow = runtime.unit_of_work()
        try:
            question, _ = await channel_actions.do_post_visitor_message(
                uow, claims=visitor_tokens.verify(TEST_SECRET, session.visitor_token), body="我的包裹到哪了？",
                client_message_id="q-1")
            await uow.commit()
        finally:
            await uow.session.close()

        path = f"/api/v1/conversations/{question.conversation_id}/messages"
        headers = {"Authorization": f"Bearer {tenant.agent.token}", "Idempotency-Key": "reply-1"}
        reply = {"body": "已发货，明天送达。", "client_message_id": "r-1"}
        log = tmp_path / "serve.log"
        lease = {"KEFU_IDEMPOTENCY_PENDING_SECONDS": str(LEASE_SECONDS)}

        faulty = ServeProcess(fresh_db_url, free_port(), log, KEFU_FAULT_CRASH_AFTER_COMMIT="1", **lease)
        try:
            await faulty.ready()
            async with httpx.AsyncClient(base_url=faulty.url, timeout=10) as http:
                with pytest.raises(httpx.TransportError):  # the node dies between commit and answer
                    await http.post(path, json=reply, headers=headers)
            assert await faulty.exit_code() == 70, log.read_text()
        finally:
            faulty.stop()

        async with runtime.sessionmaker() as db:
            claim = await db.get(IdempotencyRecord, (await db.scalar(select(IdempotencyRecord.scope)), "reply-1"))
            stored = await db.scalar(select(func.count()).select_from(Message).where(Message.client_message_id == "r-1"))
        assert claim is not None and claim.status_code is None, "the dead request's claim was never answered"
        assert stored == 1, "its reply was committed before the crash"

        healthy = ServeProcess(fresh_db_url, free_port(), log, **lease)
        try:
            await healthy.ready()
            async with httpx.AsyncClient(base_url=healthy.url, timeout=10) as http:
                early = await http.post(path, json=reply, headers=headers)
                assert early.status_code == 409 and early.json()["error"]["code"] == "idempotency_in_progress"

                lapses_at = claim.created_at.timestamp() + LEASE_SECONDS
                await asyncio.sleep(max(0.0, lapses_at - time.time()) + 0.5)
                retried = await http.post(path, json=reply, headers=headers)
                assert retried.status_code == 200, retried.text  # a replay of r-1: the stored reply, not a new one
                assert retried.json()["body"] == reply["body"] and "idempotent-replayed" not in retried.headers

                again = await http.post(path, json=reply, headers=headers)
                assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"
                assert again.json()["id"] == retried.json()["id"]
                other = await http.post(path, json={**reply, "body": "另一条"}, headers=headers)
                assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
        finally:
            healthy.stop()

        async with runtime.sessionmaker() as db:
            stored = await db.scalar(select(func.count()).select_from(Message).where(Message.client_message_id == "r-1"))
        assert stored == 1
