"""``route_once`` over several tenants: one tenant whose pass fails (here: corrupted task data stored directly
in the database) must not keep the tenants after it from being routed, tick after tick."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import update

from kefu.routing import actions as routing_actions
from kefu.routing.models import Task
from kefu.runtime import Runtime
from tests.factories import create_tenant
from tests.routing.engine import Engine


async def _routable(runtime: Runtime) -> tuple[Engine, str, str]:
    engine = Engine(runtime, await create_tenant(runtime))
    agent = await engine.agent(chat=2)
    queue = await engine.queue(offer_timeout_seconds=600)
    await engine.workflow({"queue_id": queue})
    return engine, agent, await engine.task()


async def _store_declined(engine: Engine, task_id: str, value: object) -> None:
    async def go(uow):  # type: ignore[no-untyped-def]
        await uow.session.execute(update(Task).where(Task.id == task_id).values(declined=value))

    await engine.run(go)


async def test_a_poisoned_tenant_does_not_stop_the_tenants_after_it(
        engine_runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    poisoned, poisoned_agent, poisoned_task = await _routable(engine_runtime)
    healthy, healthy_agent, healthy_task = await _routable(engine_runtime)
    # "declined" must be an object {agent id: until}; a list written by hand makes this tenant's pass raise.
    await _store_declined(poisoned, poisoned_task, ["not", "an", "object"])
    order = [poisoned.tenant.id, healthy.tenant.id]  # the poisoned tenant comes first, every tick
    with caplog.at_level(logging.ERROR, logger="kefu.routing"):
        for _tick in range(2):
            await routing_actions.route_once(engine_runtime, tenant_ids=order, now=healthy.now)
    [offer] = await healthy.offers()
    assert (offer.task_id, offer.agent_id) == (healthy_task, healthy_agent)
    assert await poisoned.offers(None) == []  # its failed pass stored nothing
    assert (await poisoned.get_task(poisoned_task)).status == "waiting"
    failures = [r for r in caplog.records if r.getMessage() == f"routing pass failed for tenant {poisoned.tenant.id}"]
    assert len(failures) == 2 and all(getattr(r, "tenant_id", None) == poisoned.tenant.id for r in failures)
    assert all(healthy.tenant.id not in r.getMessage() for r in caplog.records)
    # Once the data is repaired the next tick routes that tenant too.
    await _store_declined(poisoned, poisoned_task, {})
    assert await routing_actions.route_once(engine_runtime, tenant_ids=order, now=poisoned.now) == 1
    [repaired] = await poisoned.offers()
    assert (repaired.task_id, repaired.agent_id) == (poisoned_task, poisoned_agent)
