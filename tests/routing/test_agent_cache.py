"""The agent cache of a node: two nodes (two runtimes, each with its own engine and cache) route one tenant on
one database without hearing each other's events. A cache that is stale may cost a retry or a late offer,
never an offer beyond an agent's capacity or to an agent who is no longer available; the periodic re-read
brings it back in line. Plus the eligibility cache's incremental update."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kefu.routing import actions as routing_actions
from kefu.routing import cache as routing_cache
from kefu.routing import policies
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings, runtime_on
from tests.factories import create_tenant
from tests.routing.engine import Engine


@pytest.fixture
async def other_node(engine_db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(engine_db_url) as runtime:
        yield runtime


async def _event_pass(node: Engine) -> int:
    """A pass as an event wakes it: no housekeeping, so no periodic re-read of the cache."""
    return await node.run(lambda uow: routing_actions.route_tenant(uow, tenant_id=node.tenant.id, now=node.now,
                                                                   housekeeping=False))


async def test_a_stale_cache_never_offers_beyond_capacity_or_to_an_agent_who_left(
        engine: Engine, other_node: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    await _stale_nodes(engine, Engine(other_node, engine.tenant), monkeypatch)


async def test_a_stale_cache_is_corrected_under_the_row_locks_on_postgres(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = build_runtime(make_settings(postgres_url)), build_runtime(make_settings(postgres_url))
    try:
        a = Engine(first, await create_tenant(first))
        await _stale_nodes(a, Engine(second, a.tenant), monkeypatch)
    finally:
        await close_runtime(first)
        await close_runtime(second)


async def _stale_nodes(a: Engine, b: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing_cache, "RESYNC_SECONDS", 3600.0)  # only what the locks show may correct it
    b.now = a.now
    first = await a.agent(chat=1)
    second = await a.agent(chat=1)
    third = await a.agent(chat=1)
    queue = await a.queue(offer_timeout_seconds=600)
    await a.workflow({"queue_id": queue})
    one = await a.task()
    assert await a.route() == 1  # node A's cache now knows everyone as free, except who got `one`
    assert (await a.offer_of(one)).agent_id == first
    a.advance(1)
    b.advance(1)
    # On node B: another chat goes to the second agent and the third goes to lunch. Node A hears of neither.
    two = await b.task()
    assert await _event_pass(b) == 1
    assert (await b.offer_of(two)).agent_id == second
    await b.presence(third, "away", "lunch")
    three = await a.task()
    assert await _event_pass(a) == 0  # A chose from its cache; the locks showed nobody fits
    assert (await a.get_task(three)).status == "waiting"
    assert await a.loads() == {first: {"chat": 1}, second: {"chat": 1}}
    # The third agent returns, on node B again: A's cache still has them away, so A cannot offer yet …
    await b.presence(third, "available")
    assert await _event_pass(a) == 0
    # … until the periodic re-read of the timer's pass, which then offers at once.
    monkeypatch.setattr(routing_cache, "RESYNC_SECONDS", 0.0)
    assert await a.route() == 1
    assert (await a.offer_of(three)).agent_id == third
    loads = await a.loads()
    assert loads == {first: {"chat": 1}, second: {"chat": 1}, third: {"chat": 1}}


async def test_capacity_freed_on_this_node_is_used_by_the_next_event_pass(engine: Engine) -> None:
    agent = await engine.agent(chat=1)
    queue = await engine.queue(offer_timeout_seconds=600)
    await engine.workflow({"queue_id": queue})
    first = await engine.task()
    second = await engine.task()
    assert await engine.route() == 1
    offer = await engine.offer_of(first)
    await engine.accept(offer)
    assert await _event_pass(engine) == 0  # full
    await engine.release(first)  # the write marks the agent for a re-read: no wait for the timer
    assert await _event_pass(engine) == 1
    assert (await engine.offer_of(second)).agent_id == agent


def test_eligibility_follows_changed_agents_without_recomputing_everyone() -> None:
    def agent(agent_id: str, level: int, languages: list[str]) -> policies.AgentView:
        return policies.AgentView(agent_id, {"id": agent_id, "skills": {"returns": level}, "languages": languages},
                                  "available", {"chat": 1}, {})

    agents = {a.id: a for a in (agent("a", 2, ["zh"]), agent("b", 1, ["zh", "en"]), agent("c", 3, ["en"]))}
    expression = "skills.returns >= 2 AND languages HAS task.language"
    matcher = policies.Matcher()
    assert matcher.matching(expression, {"language": "zh"}, agents) == {"a"}
    assert matcher.matching(expression, {"language": "en"}, agents) == {"c"}
    agents["b"] = agent("b", 3, ["zh", "en"])  # promoted
    agents["d"] = agent("d", 2, ["en"])  # new
    del agents["c"]  # gone
    matcher.update_agents([agents["b"], agents["d"]], ["c"], agents)
    for language in ("zh", "en", "fr"):
        fresh = policies.Matcher().matching(expression, {"language": language}, agents)
        assert matcher.matching(expression, {"language": language}, agents) == fresh
    assert matcher.matching(expression, {"language": "en"}, agents) == {"b", "d"}
