"""Hypothesis drives the persistent engine through generated sequences of arrivals, routing passes, accepts,
rejects, offer timeouts, presence changes, transfers and releases, and checks after every step that

- a task is never offered to two agents at once (at most one pending offer, matching the task's agent),
- a task is never assigned twice (one accepted offer per assignment: no more than 1 + its transfers),
- no agent ever holds more tasks on a channel than its capacity,
- and an accept of a pending, unexpired offer by its own agent always succeeds (nothing gets stuck).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kefu.core.errors import DomainError
from kefu.routing import service as routing_service
from kefu.routing.cache import caches_of
from kefu.routing.models import AgentProfile, Offer, Task
from kefu.runtime import build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import create_tenant, create_user
from tests.routing.engine import Engine

AGENTS = 3
_SETUP: dict[str, Any] = {}
STATS: Counter[str] = Counter()  # how much the generated sequences exercised (printed with -s)

OPS = st.lists(st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 3)),
    st.tuples(st.just("arrive"), st.just(0)),
    st.tuples(st.just("route"), st.just(0)),
    st.tuples(st.just("route"), st.just(0)),
    st.tuples(st.just("accept"), st.integers(0, 20)),
    st.tuples(st.just("accept"), st.integers(0, 20)),
    st.tuples(st.just("reject"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.sampled_from([1, 5, 16])),
    st.tuples(st.just("presence"), st.tuples(st.integers(0, AGENTS - 1),
                                             st.sampled_from(["available", "away", "busy", "offline"]))),
    st.tuples(st.just("transfer_queue"), st.tuples(st.integers(0, 20), st.integers(0, 1))),
    st.tuples(st.just("transfer_agent"), st.tuples(st.integers(0, 20), st.integers(0, AGENTS - 1))),
    st.tuples(st.just("release"), st.integers(0, 20)),
), min_size=10, max_size=25)


async def _engine(url: str) -> Engine:
    runtime = build_runtime(make_settings(url))
    if "tenant" not in _SETUP:
        tenant = await create_tenant(runtime)
        _SETUP["tenant"] = tenant
        _SETUP["agents"] = [tenant.agent.id] + [(await create_user(runtime, tenant.id, "agent")).id
                                                for _ in range(AGENTS - 1)]
    engine = Engine(runtime, _SETUP["tenant"])
    # A clean slate for this example: end what earlier examples left live, fresh queues and workflow.
    live = await engine.read(lambda s: s.scalars(select(Task.id).where(
        Task.tenant_id == engine.tenant.id, Task.status.in_(("waiting", "offered", "assigned", "wrapping")))))
    for task_id in list(live):
        await engine.release(task_id, reason="canceled")
    for index, agent_id in enumerate(_SETUP["agents"]):
        await engine.agent(user_id=agent_id, chat=1 + index % 2, presence="available")
    return engine


async def _check(engine: Engine, created: list[str], transfers: Counter[str]) -> None:
    """Check the invariants for this example's tasks (earlier examples' tasks of the tenant are ended)."""
    async def go(session):  # type: ignore[no-untyped-def]
        tasks = {t.id: t for t in await session.scalars(select(Task).where(Task.id.in_(created)))}
        offers = list(await session.scalars(select(Offer).where(Offer.task_id.in_(created))))
        profiles = list(await session.scalars(select(AgentProfile).where(AgentProfile.tenant_id == engine.tenant.id)))
        loads = await routing_service.agent_loads(session=session, tenant_id=engine.tenant.id)
        return tasks, offers, profiles, loads

    tasks, offers, profiles, loads = await engine.read(go)
    pending = Counter(o.task_id for o in offers if o.status == "pending")
    accepted = Counter(o.task_id for o in offers if o.status == "accepted")
    assert all(count <= 1 for count in pending.values()), pending
    for task in tasks.values():
        if task.status == "offered":
            [offer] = [o for o in offers if o.task_id == task.id and o.status == "pending"]
            assert offer.agent_id == task.agent_id
        else:
            assert pending[task.id] == 0, (task.id, task.status)
        assert accepted[task.id] <= 1 + transfers[task.id]
    for profile in profiles:
        capacities = routing_service.capacities_of(profile.capacities)
        for channel, count in loads.get(profile.user_id, {}).items():
            assert count <= capacities[channel], (profile.user_id, channel, count)
    # The node's agent cache agrees with the database for every agent it has not been told to re-read, and its
    # incrementally kept idle order is the order a full sort would give.
    cache = caches_of(engine.runtime.engine).get(engine.tenant.id)
    if cache is not None and cache.synced_at is not None:
        for profile in profiles:
            agent = cache.agents.get(profile.user_id)
            if profile.user_id in cache.dirty or agent is None:
                continue
            assert agent.presence == profile.presence, (profile.user_id, agent.presence, profile.presence)
            assert {c: n for c, n in agent.load.items() if n} == loads.get(profile.user_id, {}), profile.user_id
        fresh = sorted((a for a in cache.agents.values() if a.presence == "available" and a.has_room()),
                       key=lambda a: (a.last_offered_at, a.occupancy(), a.id))
        assert cache.idle_order() == [a.id for a in fresh]


async def _scenario(url: str, ops: list[tuple[str, Any]]) -> None:
    engine = await _engine(url)
    try:
        queues = [await engine.queue(offer_timeout_seconds=15), await engine.queue(offer_timeout_seconds=15)]
        await engine.workflow({"queue_id": queues[0], "timeout_seconds": 10}, {"queue_id": queues[1]})
        created: list[str] = []
        transfers: Counter[str] = Counter()
        agents = _SETUP["agents"]
        for op, arg in ops:
            pick = created[arg % len(created)] if created and isinstance(arg, int) else None
            if op == "arrive":
                created.append(await engine.task(priority=arg))
            elif op == "route":
                STATS["offers"] += await engine.route()
            elif op == "advance":
                engine.advance(arg)
            elif op == "presence":
                await engine.presence(agents[arg[0]], arg[1])
            elif op in ("accept", "reject"):
                offers = await engine.offers()
                if offers:
                    offer = offers[arg % len(offers)]
                    if op == "accept":
                        if offer.expires_at > engine.now:
                            assert (await engine.accept(offer)).status == "assigned"
                            STATS["accepted"] += 1
                        else:
                            try:
                                await engine.accept(offer)
                            except DomainError as refused:
                                assert refused.code == "offer_expired"
                    else:
                        try:
                            await engine.reject(offer)
                        except DomainError as refused:
                            assert refused.code == "offer_expired"
            elif op in ("transfer_queue", "transfer_agent") and created:
                task_id = created[arg[0] % len(created)]
                try:
                    if op == "transfer_queue":
                        await engine.transfer(task_id, queue_id=queues[arg[1]])
                    else:
                        await engine.transfer(task_id, agent_id=agents[arg[1]])
                    transfers[task_id] += 1
                except DomainError as refused:
                    assert refused.code == "task_not_active"
            elif op == "release" and pick is not None:
                await engine.release(pick)
            await _check(engine, created, transfers)
    finally:
        await close_runtime(engine.runtime)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=OPS)
def test_routing_invariants_hold_for_any_sequence(engine_db_url: str, ops: list[tuple[str, Any]]) -> None:
    asyncio.run(_scenario(engine_db_url, ops))
    print(dict(STATS))
