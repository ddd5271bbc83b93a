"""Old published events are pruned; a client resuming from before the retention is told to resync."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from kefu.events.models import OutboxEvent
from tests.channels.chat import customer_says, start_session
from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import create_tenant
from tests.realtime.wsclient import agent_client


async def test_pruned_history_asks_for_a_resync(fresh_db_url: str) -> None:
    async with runtime_on(fresh_db_url) as runtime:
        live = LiveServer(make_settings(fresh_db_url)).start()
        try:
            tenant = await create_tenant(runtime)
            async with httpx.AsyncClient(base_url=live.url) as http:
                visitor = await start_session(http, tenant.inbox_id)
                await customer_says(http, visitor["visitor_token"], "an old question")
                await asyncio.sleep(0.6)  # the server marks its events published (sweep every 0.2 s in tests)
                await customer_says(http, visitor["visitor_token"], "a new question")
            await asyncio.sleep(0.6)

            pruned = await runtime.relay.prune(older_than=timedelta(0))
            assert pruned == 2  # conversation.created and the first message.created; the newest stays
            async with runtime.sessionmaker() as session:
                left = await session.scalar(select(func.count()).select_from(OutboxEvent))
                oldest = await session.scalar(select(func.min(OutboxEvent.id)))
            assert left == 1  # the newest event stays as the marker of what is gone

            stale, _, replayed = await agent_client(live.ws_url, tenant.agent.token, resume_from=1)
            assert [f["type"] for f in replayed] == ["resync_required"]
            assert replayed[0]["data"]["reason"] == "events_expired"
            await stale.close()

            fresh, registered, replayed = await agent_client(live.ws_url, tenant.agent.token, resume_from=oldest - 1)
            bodies = [f["data"]["message"]["body"] for f in replayed if f["type"] == "message.created"]
            assert bodies == ["a new question"]
            await fresh.close()
        finally:
            live.stop()
