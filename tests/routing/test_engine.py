"""The persistent engine, step by step on a simulated clock: offers, timeouts, rejects, capacity, wrap-up,
transfers, and refusals that leave the routing state unchanged."""

from __future__ import annotations

import pytest

from kefu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.routing.engine import Engine


async def test_offer_timeout_reoffers_to_another_agent_and_marks_the_agent_away(engine: Engine) -> None:
    first = await engine.agent()
    engine.advance(1)
    second = await engine.agent()
    queue = await engine.queue(offer_timeout_seconds=20)
    await engine.workflow({"queue_id": queue})
    task = await engine.task()
    assert await engine.route() == 1
    offer = await engine.offer_of(task)
    assert offer.agent_id == first  # never offered before: the longest idle, by id
    engine.advance(19)
    assert await engine.route() == 0  # still pending, nobody else gets it meanwhile
    engine.advance(1)
    assert await engine.route() == 1
    [timed_out] = await engine.offers("timed_out")
    [again] = await engine.offers()
    assert timed_out.id == offer.id and again.agent_id == second and again.task_id == task
    agents = {a.user_id: a for a in await engine.read(_profiles(engine))}
    assert agents[first].presence == "away" and agents[first].presence_reason == "missed_offer"


def _profiles(engine: Engine):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from kefu.routing.models import AgentProfile

    async def go(session):  # type: ignore[no-untyped-def]
        return list((await session.scalars(select(AgentProfile).where(
            AgentProfile.tenant_id == engine.tenant.id))).all())

    return go


async def test_reject_offers_to_someone_else_and_not_back_to_the_rejecter_for_a_while(engine: Engine) -> None:
    first = await engine.agent()
    await engine.queue()
    queue = await engine.queue()
    await engine.workflow({"queue_id": queue})
    task = await engine.task()
    await engine.route()
    offer = await engine.offer_of(task)
    rejected = await engine.reject(offer)
    assert rejected.status == "waiting"
    assert await engine.route() == 0  # the only agent just declined it
    second = await engine.agent()
    assert await engine.route() == 1
    assert (await engine.offer_of(task)).agent_id == second != first


async def test_accept_assigns_and_answers_stay_exactly_once(engine: Engine) -> None:
    agent = await engine.agent()
    other = await engine.agent()
    queue = await engine.queue()
    await engine.workflow({"queue_id": queue})
    task = await engine.task()
    await engine.route()
    offer = await engine.offer_of(task)
    with pytest.raises(Forbidden) as foreign:
        await engine.accept(offer, agent_id=other if offer.agent_id == agent else agent)
    assert foreign.value.code == "offer_not_yours"
    assert (await engine.get_task(task)).status == "offered"  # state unchanged
    assigned = await engine.accept(offer)
    assert assigned.status == "assigned" and assigned.agent_id == offer.agent_id
    with pytest.raises(Conflict) as twice:
        await engine.accept(offer)
    assert twice.value.code == "offer_not_pending"
    with pytest.raises(Conflict):
        await engine.reject(offer)


async def test_an_expired_offer_cannot_be_accepted_and_nothing_changes(engine: Engine) -> None:
    await engine.agent()
    queue = await engine.queue(offer_timeout_seconds=10)
    await engine.workflow({"queue_id": queue})
    task = await engine.task()
    await engine.route()
    offer = await engine.offer_of(task)
    engine.advance(10)
    with pytest.raises(Conflict) as late:
        await engine.accept(offer)
    assert late.value.code == "offer_expired"
    assert (await engine.get_task(task)).status == "offered"
    assert [o.id for o in await engine.offers()] == [offer.id]


async def test_capacity_holds_tasks_until_a_slot_frees_and_wrapup_keeps_it_taken(engine: Engine) -> None:
    agent = await engine.agent(chat=1)
    queue = await engine.queue(auto_accept=True, wrapup_seconds=30)
    await engine.workflow({"queue_id": queue})
    first = await engine.task()
    engine.advance(1)
    second = await engine.task()
    assert await engine.route() == 1
    assert (await engine.get_task(first)).status == "assigned"  # auto-accept
    assert await engine.route() == 0 and (await engine.get_task(second)).status == "waiting"
    done = await engine.release(first)
    assert done.status == "wrapping"
    engine.advance(29)
    assert await engine.route() == 0  # wrap-up still occupies the only slot
    assert (await engine.loads())[agent] == {"chat": 1}
    engine.advance(1)
    assert await engine.route() == 1
    assert (await engine.get_task(first)).status == "completed"
    assert (await engine.get_task(second)).agent_id == agent


async def test_an_unanswered_task_released_counts_as_abandoned(engine: Engine) -> None:
    queue = await engine.queue()
    await engine.workflow({"queue_id": queue})
    task = await engine.task()
    released = await engine.release(task, reason="closed")
    assert released.status == "canceled" and released.end_reason == "abandoned"


async def test_transfers_to_a_queue_and_to_an_agent(engine: Engine) -> None:
    generalist = await engine.agent(chat=2)
    specialist = await engine.agent(chat=2, skills={"large_appliance": 3})
    everyone = await engine.queue(name="all", auto_accept=True)
    experts = await engine.queue(name="experts", target_expression="skills.large_appliance >= 2")
    await engine.workflow({"queue_id": everyone})
    await engine.presence(specialist, "away", "training")
    task = await engine.task()
    await engine.route()
    assert (await engine.get_task(task)).agent_id == generalist
    moved = await engine.transfer(task, queue_id=experts)
    assert moved.status == "waiting" and moved.queue_id == experts
    assert (await engine.loads()).get(generalist, {}).get("chat", 0) == 0  # capacity released at once
    assert await engine.route() == 0  # the only expert is in training
    await engine.presence(specialist, "available")
    assert await engine.route() == 1
    assert (await engine.offer_of(task)).agent_id == specialist
    back = await engine.transfer(task, agent_id=generalist)
    assert back.status == "waiting" and back.pinned_agent_id == generalist
    assert [o.status for o in await engine.offers(None)][-1] == "canceled"
    await engine.route()
    assert (await engine.offer_of(task)).agent_id == generalist


async def test_bad_transfers_are_refused(engine: Engine) -> None:
    queue = await engine.queue()
    await engine.workflow({"queue_id": queue})
    task = await engine.task()
    with pytest.raises(NotFound) as unknown:
        await engine.transfer(task, queue_id="que_01jd0000000000000000000000")
    assert unknown.value.code == "queue_not_found"
    with pytest.raises(NotFound) as nobody:
        await engine.transfer(task, agent_id="usr_01jd0000000000000000000000")
    assert nobody.value.code == "agent_not_found"
    with pytest.raises(ValidationFailed):
        await engine.transfer(task)
    await engine.release(task)
    with pytest.raises(Conflict) as ended:
        await engine.transfer(task, queue_id=queue)
    assert ended.value.code == "task_not_active"


async def test_priority_then_age_across_passes(engine: Engine) -> None:
    queue = await engine.queue(auto_accept=True)
    await engine.workflow({"queue_id": queue})
    old = await engine.task()
    engine.advance(5)
    urgent = await engine.task(priority=5)
    engine.advance(5)
    await engine.task()
    await engine.agent(chat=1)
    await engine.route()
    assert (await engine.get_task(urgent)).status == "assigned"
    await engine.agent(chat=1)
    await engine.route()
    assert (await engine.get_task(old)).status == "assigned"


async def test_workflow_timeout_overflows_on_the_simulated_clock(engine: Engine) -> None:
    await engine.agent()
    experts = await engine.queue(target_expression="skills.large_appliance >= 2")
    everyone = await engine.queue()
    await engine.workflow({"queue_id": everyone}, filters=[{
        "name": "fridges", "expression": "category == 'large_appliance'",
        "targets": [{"queue_id": experts, "timeout_seconds": 30}, {"queue_id": everyone}]}])
    task = await engine.task(category="large_appliance")
    assert await engine.route() == 0
    waiting = await engine.get_task(task)
    assert (waiting.queue_id, waiting.step) == (experts, 0)
    engine.advance(30)
    assert await engine.route() == 1
    assert (await engine.get_task(task)).queue_id == everyone


async def test_attributes_added_later_steer_the_workflow(engine: Engine) -> None:
    from kefu.routing import actions as routing_actions
    from kefu.routing.models import Task

    await engine.agent(skills={"large_appliance": 3})
    experts = await engine.queue(target_expression="skills.large_appliance >= 2")
    nobody = await engine.queue(target_expression="skills.nothing >= 1")
    await engine.workflow({"queue_id": nobody}, filters=[{
        "name": "fridges", "expression": "category == 'large_appliance'", "targets": [{"queue_id": experts}]}])
    task = await engine.task()
    assert await engine.route() == 0

    async def tag(uow):  # type: ignore[no-untyped-def]
        found = await uow.session.get(Task, task)
        return await routing_actions.do_update_task(uow, task=found, attributes={"category": "large_appliance"})

    await engine.run(tag)
    assert await engine.route() == 1
    assert (await engine.get_task(task)).queue_id == experts


async def test_queue_statistics_count_service_level_abandonment_and_speed_of_answer(engine: Engine) -> None:
    from kefu.routing import service as routing_service

    agent = await engine.agent(chat=1)
    queue = await engine.queue(sl_target_seconds=20)
    await engine.workflow({"queue_id": queue})
    fast = await engine.task()
    engine.advance(1)
    slow = await engine.task()
    engine.advance(1)
    gone = await engine.task()
    await engine.route()
    engine.advance(4)
    await engine.accept(await engine.offer_of(fast))  # answered after 6 s
    await engine.release(fast)
    await engine.route()
    engine.advance(29)
    await engine.accept(await engine.offer_of(slow))  # answered after 34 s
    await engine.release(gone, reason="closed")  # the customer left before anyone answered
    stats = await engine.read(lambda s: routing_service.queue_stats(session=s, tenant_id=engine.tenant.id))
    [figures] = stats.queues
    assert (figures.answered, figures.abandoned, figures.answered_within_target) == (2, 1, 1)
    assert figures.service_level == round(1 / 3, 4)
    assert figures.average_speed_of_answer_seconds == 20.0
    assert (figures.assigned, figures.waiting, figures.agents_eligible) == (1, 0, 1)
    assert agent
