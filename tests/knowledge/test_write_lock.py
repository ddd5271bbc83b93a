"""Customers' messages and other writes go through while the knowledge base computes for seconds.

On SQLite every transaction begins with ``BEGIN IMMEDIATE``, so a request whose read transaction stayed open
through an index rebuild or gap clustering held the database's only write lock for the whole computation. Every
other writer (chat messages, routing, the outbox relay, other requests) waited, and failed with "database is
locked" after the busy timeout. These tests write while the computation is seen running in the live server's
worker thread, and check that the write is done before the request answers, while the work still runs.
Each test uses a database of its own, filled directly through the ORM: the API would take too long for
thousands of rows.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from kefu.core.clock import utcnow
from kefu.core.ids import new_id
from kefu.knowledge import service as knowledge_service
from kefu.knowledge.index import SearchIndex
from kefu.knowledge.models import KbEntry, KbEntryVersion, KbQuery
from kefu.runtime import Runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.models import Tenant
from kefu.tenants.schemas import TenantCreate
from tests.channels.chat import customer_says, start_session
from tests.conftest import LiveServer, make_settings, runtime_on
from tests.factories import TenantFixture, create_tenant

# Enough rows for seconds of CPU work on a 2-core machine, far longer than one chat message takes to store.
ENTRIES = 15_000
QUESTIONS = 2_000

PRODUCTS = ["蓝色水壶", "红色茶壶", "无线耳机", "充电宝", "羊毛外套", "跑步鞋", "保温杯", "电动牙刷", "kettle",
            "teapot", "earbuds", "power bank", "wool coat", "running shoes", "thermos", "toothbrush"]
TOPICS = ["怎么退货", "运费谁出", "什么时候发货", "可以开发票吗", "保修多久", "尺码偏大吗", "怎么清洗", "有优惠吗",
          "how do I return", "who pays shipping for", "when will you ship", "can I get an invoice for",
          "how long is the warranty on", "how do I clean", "is there a discount on", "what sizes are there for"]


def _question(rng: random.Random, n: int) -> str:
    return f"{rng.choice(TOPICS)} {rng.choice(PRODUCTS)} {rng.choice(PRODUCTS)} #{n}"


@dataclass
class Node:
    server: LiveServer
    runtime: Runtime
    tenant: TenantFixture
    http: httpx.AsyncClient


@asynccontextmanager
async def _node(database_url: str) -> AsyncIterator[Node]:
    async with runtime_on(database_url) as runtime:
        tenant = await create_tenant(runtime)
        server = LiveServer(make_settings(database_url)).start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                yield Node(server, runtime, tenant, http)
        finally:
            server.stop()


async def _publish_entries(runtime: Runtime, tenant_id: str, count: int) -> None:
    rng, now = random.Random(7), utcnow()
    entries, versions = [], []
    for n in range(count):
        question, answer = _question(rng, n), f"{_question(rng, n)}：请联系客服处理。 Contact us and we will help."
        content = {"title": "", "question": question, "paraphrases": [], "answer": answer, "chunks": []}
        entry_id = new_id("kb")
        entries.append({"id": entry_id, "tenant_id": tenant_id, "kind": "faq", "status": "published",
                        "language": "zh", "category": "", "tags": [], "channels": [], "product_ids": [],
                        "version": 1, "published_version": 1, "published_at": now, "created_at": now,
                        "updated_at": now, **content})
        versions.append({"id": new_id("kbv"), "tenant_id": tenant_id, "entry_id": entry_id, "version": 1,
                         "created_at": now, **content})
    for start in range(0, count, 2_000):  # short transactions: this file's own lock holds stay brief
        async with runtime.sessionmaker() as session:
            await session.execute(insert(KbEntry), entries[start:start + 2_000])
            await session.execute(insert(KbEntryVersion), versions[start:start + 2_000])
            await session.commit()


async def _unanswered_questions(runtime: Runtime, tenant_id: str, count: int) -> None:
    rng, now = random.Random(11), utcnow()
    rows = [{"id": new_id("kbq"), "tenant_id": tenant_id, "question": _question(rng, n), "language": "zh",
             "decision": "handoff", "candidates": [], "confidence": 0.0, "created_at": now - timedelta(minutes=n)}
            for n in range(count)]
    async with runtime.sessionmaker() as session:
        await session.execute(insert(KbQuery), rows)
        await session.commit()


def _running(function: Callable[..., Any]) -> bool:
    """Whether a thread of this process (the live server's worker threads among them) is inside ``function``."""
    code = function.__code__
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code is code:
                return True
            frame = frame.f_back
    return False


async def _started(work: Callable[..., Any], request: asyncio.Task[httpx.Response]) -> None:
    while not _running(work):
        assert not request.done(), f"{work.__qualname__} was never seen running: {request.result().text}"
        await asyncio.sleep(0.005)


async def _customer_writes_meanwhile(node: Any, visitor: dict[str, Any], work: Any, request: asyncio.Future[Any],
                                     what: str) -> None:
    """Once ``work`` runs for ``request``, a customer's chat message is stored while it still runs, before the
    request has answered: the work holds no write lock."""
    await _started(work, request)
    await customer_says(node.http, visitor["visitor_token"], "你好，我的快递到哪了？")
    still_running = _running(work)
    assert not request.done(), f"the customer's message waited for the request doing {what} to answer"
    assert still_running, f"the customer's message waited for {what}"


@pytest.mark.parametrize("route", ["search", "answer"])
async def test_a_customer_message_is_stored_while_a_large_index_is_rebuilt(fresh_db_url: str, route: str) -> None:
    async with _node(fresh_db_url) as node:
        await _publish_entries(node.runtime, node.tenant.id, ENTRIES)
        visitor = await start_session(node.http, node.tenant.inbox_id)
        if route == "search":
            asked = node.http.get("/api/v1/kb-search", headers=node.tenant.agent.headers,
                                  params={"q": "蓝色水壶怎么退货"})
        else:  # what the bot's knowledge fallback does: decide, then record the answer
            asked = node.http.post("/api/v1/kb-answers", headers=node.tenant.agent.headers,
                                   json={"question": "蓝色水壶怎么退货"})
        request = asyncio.ensure_future(asked)
        await _customer_writes_meanwhile(node, visitor, SearchIndex.__init__, request, "the index rebuild")

        response = await request
        assert response.status_code in (200, 201), response.text
        if route == "search":
            assert response.json()["data"]
        else:
            async with node.runtime.sessionmaker() as session:  # the answer was recorded, once
                recorded = (await session.scalars(select(KbQuery).where(KbQuery.tenant_id == node.tenant.id))).all()
            assert [r.id for r in recorded] == [response.json()["id"]]


async def test_a_customer_message_is_stored_while_gaps_are_clustered(fresh_db_url: str) -> None:
    async with _node(fresh_db_url) as node:
        await _unanswered_questions(node.runtime, node.tenant.id, QUESTIONS)
        visitor = await start_session(node.http, node.tenant.inbox_id)
        request = asyncio.ensure_future(node.http.get("/api/v1/kb-gaps", headers=node.tenant.agent.headers,
                                                      params={"limit": 100}))
        await _customer_writes_meanwhile(node, visitor, knowledge_service.policies_cluster, request,
                                         "the clustering")

        response = await request
        assert response.status_code == 200, response.text
        proposals = response.json()["data"]
        assert proposals and sum(p["count"] for p in proposals) <= QUESTIONS


@pytest.mark.parametrize("write", ["orm", "core"])
async def test_a_rebuild_never_commits_what_its_caller_wrote(db_url: str, write: str) -> None:
    """A caller whose transaction has written keeps it (the rebuild runs inside), and its rollback undoes all.

    After a flush the session has nothing pending, and a Core statement never passes through it: only the
    database can tell that the transaction wrote."""
    async with runtime_on(db_url) as runtime:
        tenant = await create_tenant(runtime)
        await _publish_entries(runtime, tenant.id, 20)
        slug = f"t-{uuid.uuid4().hex[:12]}"
        uow = runtime.unit_of_work()
        try:
            if write == "orm":
                await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name="half done"))
                await uow.session.flush()
            else:
                await uow.session.execute(update(KbEntry).where(KbEntry.tenant_id == tenant.id).values(views=7))
            index = await knowledge_service.search_index(session=uow.session, tenant_id=tenant.id)
            assert len(index.entries) == 20 and uow.session.in_transaction()
            await uow.rollback()
        finally:
            await uow.session.close()
        async with runtime.sessionmaker() as session:
            assert await session.scalar(select(Tenant).where(Tenant.slug == slug)) is None
            views = (await session.scalars(select(KbEntry.views).where(KbEntry.tenant_id == tenant.id))).all()
            assert set(views) == {0}
