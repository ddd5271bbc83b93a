"""The bot's recovery sweep finds every message whose ``message.created`` event was missed.

Events can be lost (a node restarting between commit and publish, a Redis hiccup); the sweep then looks in the
database for customer messages of bot-owned conversations that no node claimed. It must find them however
many messages the bot already handled in its window: a sweep that took the oldest N customer messages and only
then dropped the claimed ones queued nothing once N messages had been handled, and that customer never got an
answer. Each test has a database of its own (SQLite and PostgreSQL): the sweep looks at every tenant.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

import kefu.integrations.commerce as commerce_integrations
from kefu.bot import actions as bot_actions
from kefu.bot import service as bot_service
from kefu.bot.runner import BotRunner
from kefu.bot.workers import SWEEP_BATCH, SWEEP_HORIZON, BotWorker
from kefu.channels import actions as channel_actions
from kefu.core.clock import utcnow
from kefu.core.migrate import upgrade
from kefu.runtime import Runtime
from tests.bot.helpers import Shopper, bot_replies, enable_bot, shopper
from tests.conftest import (
    PG_ADMIN_DSN,
    PG_HOST,
    PG_PORT,
    _pg_admin,
    _port_open,
    fresh_sqlite_url,
    runtime_on,
    unavailable,
)
from tests.factories import TenantFixture, create_tenant

HANDLED = SWEEP_BATCH + 20  # more handled messages in the window than one sweep reads


@pytest.fixture(params=["sqlite", "postgres"])
def own_db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield fresh_sqlite_url(tmp_path)
        return
    if not _port_open(PG_HOST, PG_PORT):
        unavailable("PostgreSQL at 127.0.0.1:5432")
    name = f"kefu_sweep_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def node(own_db_url: str) -> AsyncIterator[Runtime]:
    """A node whose bus nobody publishes to: every message below is one whose event was missed."""
    commerce_integrations.install()
    async with runtime_on(own_db_url) as rt:
        yield rt


async def _post_many(customer: Shopper, texts: list[str]) -> list[str]:
    """Post the customer's messages in one transaction (as one group commit would); their ids."""
    uow = customer.runtime.unit_of_work()
    try:
        outcomes = await channel_actions.do_post_visitor_messages(uow, [
            channel_actions.VisitorPost(claims=customer.claims, body=text, client_message_id=uuid.uuid4().hex)
            for text in texts])
        await uow.commit()
    finally:
        await uow.session.close()
    messages = [outcome[0] for outcome in outcomes]  # type: ignore[index]
    customer.conversation_id = messages[0].conversation_id
    return [m.id for m in messages]


async def _claim_all(runtime: Runtime, tenant_id: str, conversation_id: str, message_ids: list[str]) -> None:
    """What a live node does first with each message it hears of (its answers are not what this test is about)."""
    uow = runtime.unit_of_work()
    try:
        for message_id in message_ids:
            assert await bot_actions.do_claim_turn(uow, tenant_id=tenant_id, conversation_id=conversation_id,
                                                   message_id=message_id, node_id="node-alive")
        await uow.commit()
    finally:
        await uow.session.close()


async def _answered_by_the_worker(worker: BotWorker, runtime: Runtime, conversation_id: str,
                                  message_id: str, timeout: float = 30.0) -> list[str]:
    running = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + timeout
        while not (said := await bot_replies(runtime, conversation_id, message_id)):
            assert not running.done(), running
            assert time.monotonic() < deadline, "the bot never answered the message whose event was missed"
            await asyncio.sleep(0.05)
        return said
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_message_whose_event_was_missed_is_answered_after_more_than_a_sweep_of_handled_ones(
        node: Runtime) -> None:
    tenant: TenantFixture = await create_tenant(node)
    await enable_bot(node, tenant.id, tenant.inbox_id)
    runner = BotRunner(node)
    # Busy day: two customers whose messages the bot has handled, more of them than one sweep reads ...
    for half in (HANDLED // 2, HANDLED - HANDLED // 2):
        regular = await shopper(node, runner, tenant.id, tenant.inbox_id, customer_id=None)
        ids = await _post_many(regular, [f"where is my parcel, part {n}" for n in range(half)])
        await _claim_all(node, tenant.id, regular.conversation_id, ids)  # type: ignore[arg-type]
    # ... one of them answered for real, end to end, as any of these was.
    answered_id = await regular.post("你好")
    assert (await runner.handle_message(tenant_id=tenant.id, conversation_id=regular.conversation_id,  # type: ignore[arg-type]
                                        message_id=answered_id)).outcome == "answered"
    # Then a new customer writes, and the node that should have heard of it restarted meanwhile.
    newcomer = await shopper(node, runner, tenant.id, tenant.inbox_id, customer_id=None)
    missed_id = await newcomer.post("你好")

    async with node.sessionmaker() as session:
        unanswered = await bot_service.unanswered_messages(session=session, since=utcnow() - SWEEP_HORIZON)
    assert unanswered == [(tenant.id, newcomer.conversation_id, missed_id)]

    worker = BotWorker(node, runner)
    assert await worker.sweep() == 1
    assert await worker.sweep() == 0  # queued here already: not twice
    said = await _answered_by_the_worker(worker, node, newcomer.conversation_id, missed_id)  # type: ignore[arg-type]
    assert said and all(text.strip() for text in said)
    assert await worker.sweep() == 0  # answered: nothing left for the next sweep


async def test_the_sweep_takes_the_oldest_unclaimed_first_and_the_rest_on_the_next_round(node: Runtime) -> None:
    """More unclaimed messages than one batch (the bot was down a while): none is lost, the oldest go first."""
    tenant = await create_tenant(node)
    await enable_bot(node, tenant.id, tenant.inbox_id)
    customer = await shopper(node, BotRunner(node), tenant.id, tenant.inbox_id, customer_id=None)
    ids = await _post_many(customer, [f"hello {n}" for n in range(SWEEP_BATCH + 5)])
    async with node.sessionmaker() as session:
        first = await bot_service.unanswered_messages(session=session, since=utcnow() - SWEEP_HORIZON,
                                                      limit=SWEEP_BATCH)
    assert [m for _, _, m in first] == sorted(ids)[:SWEEP_BATCH]
    await _claim_all(node, tenant.id, customer.conversation_id, [m for _, _, m in first])  # type: ignore[arg-type]
    async with node.sessionmaker() as session:
        rest = await bot_service.unanswered_messages(session=session, since=utcnow() - SWEEP_HORIZON,
                                                     limit=SWEEP_BATCH)
    assert [m for _, _, m in rest] == sorted(ids)[SWEEP_BATCH:]
