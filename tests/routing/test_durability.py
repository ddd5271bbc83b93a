"""Routing state lives in the database: after a restart, waiting tasks are still waiting, in order, and the
new node's routing loop offers them within a few seconds without being told anything."""

from __future__ import annotations

import asyncio

from tests.conftest import LiveServer, close_runtime, make_settings, runtime_on
from tests.routing.engine import Engine


async def test_waiting_tasks_survive_a_restart_and_are_routed_in_order(engine: Engine, engine_db_url: str) -> None:
    agent = await engine.agent(chat=2, presence="offline")
    queue = await engine.queue()
    await engine.workflow({"queue_id": queue})
    oldest = await engine.task()
    engine.advance(1)
    urgent = await engine.task(priority=5)
    engine.advance(1)
    newest = await engine.task()
    assert await engine.route() == 0  # nobody available
    await close_runtime(engine.runtime)  # the node goes away

    node = LiveServer(make_settings(engine_db_url)).start()  # a fresh node on the same database
    async with runtime_on(engine_db_url) as reader:
        view = Engine(reader, engine.tenant)  # the test's own view of the database, not a node
        view.now = engine.now
        try:
            for task_id in (oldest, urgent, newest):
                assert (await view.get_task(task_id)).status == "waiting"
            await view.presence(agent, "available")
            for _ in range(100):
                offers = await view.offers()
                if len(offers) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(o.task_id for o in offers) == sorted([urgent, oldest])  # priority first, then age
            assert (await view.get_task(newest)).status == "waiting"
        finally:
            node.stop()
