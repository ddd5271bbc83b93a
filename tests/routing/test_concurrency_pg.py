"""Several nodes routing one tenant at once on PostgreSQL: four event loops in four threads, each with its own
connection pool (as four app nodes would have), run routing passes over the same waiting tasks and agents.

Every task must be offered at most once, no agent may exceed its capacity, and together they must still
route everything that fits.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from sqlalchemy import select

from kefu.routing import actions as routing_actions
from kefu.routing.models import Offer, Task
from kefu.runtime import build_runtime
from tests.conftest import make_settings
from tests.factories import create_tenant
from tests.routing.engine import Engine

NODES, AGENTS, CAPACITY, TASKS = 4, 12, 3, 60


async def _node(url: str, tenant_id: str, passes: list[int]) -> None:
    runtime = build_runtime(make_settings(url))
    try:
        idle = 0
        while idle < 5:
            made = await routing_actions.route_once(runtime, tenant_ids=[tenant_id])
            passes.append(made)
            idle = idle + 1 if made == 0 else 0
            await asyncio.sleep(0)
    finally:
        await runtime.engine.dispose()


async def test_concurrent_nodes_offer_each_task_once_and_respect_capacity(postgres_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Small passes, so that the nodes interleave many transactions over the same rows.
    monkeypatch.setattr(routing_actions, "PASS_LIMIT", 4)
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine = Engine(runtime, await create_tenant(runtime))
        agents = [await engine.agent(chat=CAPACITY) for _ in range(AGENTS)]
        queue = await engine.queue(offer_timeout_seconds=600)
        await engine.workflow({"queue_id": queue})
        for index in range(TASKS):
            engine.advance(0.01)
            await engine.task(priority=index % 3)
        results: list[list[int]] = [[] for _ in range(NODES)]
        threads = [threading.Thread(target=asyncio.run, args=(_node(postgres_url, engine.tenant.id, results[i]),))
                   for i in range(NODES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        offers = await engine.offers(None)
        per_task = Counter(o.task_id for o in offers)
        assert per_task and max(per_task.values()) == 1  # never offered twice
        assert len(offers) == AGENTS * CAPACITY  # everything that fits was routed
        loads = await engine.loads()
        assert set(loads) == set(agents) and all(load == {"chat": CAPACITY} for load in loads.values())
        async with runtime.sessionmaker() as session:
            statuses = Counter((await session.scalars(
                select(Task.status).where(Task.tenant_id == engine.tenant.id))).all())
            pending = list(await session.scalars(select(Offer).where(Offer.tenant_id == engine.tenant.id,
                                                                     Offer.status == "pending")))
            assert statuses == {"offered": AGENTS * CAPACITY, "waiting": TASKS - AGENTS * CAPACITY}
            assert {o.task_id for o in pending} == {t for t, in (await session.execute(
                select(Task.id).where(Task.tenant_id == engine.tenant.id, Task.status == "offered"))).all()}
        assert sum(sum(r) for r in results) == AGENTS * CAPACITY
        assert sum(1 for r in results if sum(r) > 0) >= 2  # more than one node did part of the work
    finally:
        await runtime.engine.dispose()
