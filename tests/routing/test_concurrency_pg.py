"""Several nodes routing one tenant at once on PostgreSQL: four event loops in four threads, each with its own
connection pool (as four app nodes would have), run routing passes over the same waiting tasks and agents.

Every task must be offered at most once, no agent may exceed its capacity, and together they must still
route everything that fits. Then races between an accept and a transfer or a release of the same task, and
between a manual assignment and a pass choosing the same agent, each played out in a fixed interleaving:
the second writer is started while the first holds its row locks, and the first commits only once the
second is seen waiting on a lock (or has finished).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, text

from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.core.errors import DomainError
from kefu.routing import actions as routing_actions
from kefu.routing.models import Offer, Task
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import create_tenant
from tests.routing.engine import Engine
from tests.routing.helpers import start_conversation

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
        await close_runtime(runtime)


def run_in_threads(coroutines: list[Callable[[], Awaitable[Any]]], timeout: float = 120.0) -> None:
    """Run each coroutine in an event loop of its own thread; fail if one raised or did not finish in time."""
    failures: list[BaseException] = []

    def target(make: Callable[[], Awaitable[Any]]) -> None:
        try:
            asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failures.append(exc)

    threads = [threading.Thread(target=target, args=(make,), daemon=True) for make in coroutines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not [t for t in threads if t.is_alive()], "a node did not finish in time"
    assert not failures, f"a node failed: {failures!r}"


def test_a_failing_node_fails_the_run() -> None:
    async def broken() -> None:
        raise RuntimeError("node crashed")

    async def fine() -> None:
        await asyncio.sleep(0)

    try:
        run_in_threads([fine, broken])
    except AssertionError as exc:
        assert "node crashed" in str(exc)
    else:
        raise AssertionError("a node's exception went unnoticed")


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
        tenant_id = engine.tenant.id
        # Runs in threads of its own (each its own event loop), not in this test's loop.
        await asyncio.to_thread(run_in_threads, [
            (lambda passes=results[i]: _node(postgres_url, tenant_id, passes)) for i in range(NODES)])
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
        await close_runtime(runtime)


# --- races on one task ---------------------------------------------------------------------------------------

async def _backend_pid(uow: Any) -> int:
    return int(await uow.session.scalar(text("SELECT pg_backend_pid()")))


async def _until_waiting_or_done(runtime: Runtime, pid: int, job: asyncio.Task[Any]) -> None:
    """Until the connection ``pid`` waits for a row lock (or its job finished without waiting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not job.done():
        async with runtime.sessionmaker() as session:
            waiting = await session.scalar(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                                           {"pid": pid})
        if waiting == "Lock":
            return
        assert loop.time() < deadline, "the second writer neither waited nor finished"
        await asyncio.sleep(0.02)


async def _offered_task(runtime: Runtime) -> tuple[Engine, str, Offer, list[str]]:
    """A tenant with two agents and a task offered to one of them."""
    engine = Engine(runtime, await create_tenant(runtime))
    agents = [await engine.agent(chat=1) for _ in range(2)]
    queue = await engine.queue(offer_timeout_seconds=600)
    await engine.workflow({"queue_id": queue})
    task_id = await engine.task()
    assert await engine.route() == 1
    return engine, task_id, await engine.offer_of(task_id), agents


async def _race_with_accept(runtime: Runtime, offer: Offer, second: Callable[[Any], Awaitable[Any]]) -> Any:
    """Accept ``offer`` (locks held, not committed), start ``second(uow)`` in another transaction, commit the
    accept once the second waits on a lock, then let it finish; returns its result or the error it raised."""
    accept_uow = runtime.unit_of_work()
    other_uow = runtime.unit_of_work()
    try:
        found = await accept_uow.session.get(Offer, offer.id)
        assert found is not None
        await routing_actions.do_accept_offer(accept_uow, offer=found, agent_id=offer.agent_id)
        pid = await _backend_pid(other_uow)

        async def run_second() -> Any:
            try:
                result = await second(other_uow)
                await other_uow.commit()
                return result
            except DomainError as exc:
                return exc

        job = asyncio.create_task(run_second())
        await _until_waiting_or_done(runtime, pid, job)
        await accept_uow.commit()
        return await asyncio.wait_for(job, 20)
    finally:
        await accept_uow.session.close()
        await other_uow.session.close()


async def test_a_transfer_racing_an_accept_does_not_undo_it(postgres_url: str) -> None:
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine, task_id, offer, agents = await _offered_task(runtime)
        other_queue = await engine.queue(name="other", offer_timeout_seconds=600)

        async def transfer(uow: Any) -> Any:
            task = await uow.session.get(Task, task_id)  # read before the accept commits: still "offered"
            assert task.status == "offered"
            return await routing_actions.do_transfer_task(uow, task=task, queue_id=other_queue, agent_id=None)

        outcome = await _race_with_accept(runtime, offer, transfer)
        # The transfer was decided on a task that changed under it: refused, nothing of it stored.
        assert isinstance(outcome, DomainError) and (outcome.code, outcome.status) == ("version_conflict", 409)
        [stored] = [o for o in await engine.offers(None) if o.task_id == task_id]
        assert stored.status == "accepted"
        task = await engine.get_task(task_id)
        assert (task.status, task.agent_id, task.queue_id) == ("assigned", offer.agent_id, offer.queue_id)
        # Nobody else is offered the conversation the first agent holds.
        engine.advance(1)
        assert await engine.route() == 0
        assert await engine.offers() == []
        assert await engine.loads() == {offer.agent_id: {"chat": 1}}
        # Transferred again now that the caller sees the assignment: it goes.
        moved = await engine.transfer(task_id, queue_id=other_queue)
        assert (moved.status, moved.agent_id) == ("waiting", None)
    finally:
        await close_runtime(runtime)


async def test_a_release_racing_an_accept_ends_the_task_as_answered(postgres_url: str) -> None:
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine, task_id, offer, _agents = await _offered_task(runtime)

        async def release(uow: Any) -> Any:
            task = await uow.session.get(Task, task_id)
            assert task.status == "offered"
            return await routing_actions.do_release_task(uow, task=task, reason="resolved")

        outcome = await _race_with_accept(runtime, offer, release)
        assert not isinstance(outcome, DomainError), outcome
        [stored] = [o for o in await engine.offers(None) if o.task_id == task_id]
        assert stored.status == "accepted"
        task = await engine.get_task(task_id)
        # Answered (the accept came first), not an abandoned contact: counted as such in the statistics.
        assert (task.status, task.end_reason, task.agent_id) == ("completed", "resolved", offer.agent_id)
        assert task.assigned_at is not None
    finally:
        await close_runtime(runtime)


async def test_an_accept_after_a_transfer_is_refused(postgres_url: str) -> None:
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine, task_id, offer, _agents = await _offered_task(runtime)
        other_queue = await engine.queue(name="other", offer_timeout_seconds=600)
        await engine.transfer(task_id, queue_id=other_queue)
        try:
            await engine.accept(offer)
        except DomainError as exc:
            assert (exc.code, exc.status) == ("offer_not_pending", 409)
        else:
            raise AssertionError("accepted an offer the transfer canceled")
        [stored] = [o for o in await engine.offers(None) if o.task_id == task_id]
        assert stored.status == "canceled"
        task = await engine.get_task(task_id)
        assert (task.status, task.agent_id, task.queue_id) == ("waiting", None, other_queue)
    finally:
        await close_runtime(runtime)


async def test_a_pass_sees_a_manual_assignment_committed_while_it_confirms(postgres_url: str) -> None:
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine = Engine(runtime, await create_tenant(runtime))
        agent = await engine.agent(chat=1)
        queue = await engine.queue(offer_timeout_seconds=600)
        await engine.workflow({"queue_id": queue})
        conversation_id, _contact = await start_conversation(runtime, engine.tenant)
        waiting = await engine.task()
        manual_uow = runtime.unit_of_work()
        pass_uow = runtime.unit_of_work()
        try:
            # A supervisor gives the conversation to the agent (not committed yet) ...
            conversation = await conversation_service.access_conversation(
                session=manual_uow.session, tenant_id=engine.tenant.id, conversation_id=conversation_id)
            await conversation_actions.do_update_conversation(manual_uow, conversation=conversation,
                                                              changes={"assignee_id": agent})
            pid = await _backend_pid(pass_uow)

            async def route() -> int:
                made = await routing_actions.route_tenant(pass_uow, tenant_id=engine.tenant.id, now=engine.now)
                await pass_uow.commit()
                return made

            # ... while a pass, which still sees the agent free, chooses the agent for the other task.
            job = asyncio.create_task(route())
            await _until_waiting_or_done(runtime, pid, job)
            await manual_uow.commit()
            assert await asyncio.wait_for(job, 20) == 0
        finally:
            await manual_uow.session.close()
            await pass_uow.session.close()
        assert await engine.loads() == {agent: {"chat": 1}}  # capacity 1: the manual assignment only
        task = await engine.get_task(waiting)
        assert (task.status, task.agent_id) == ("waiting", None)
    finally:
        await close_runtime(runtime)



# --- lock order between conversation actions and routing writes ------------------------------------------------

async def _race_after_conversation_write(runtime: Runtime, monkeypatch: Any, *, tenant_id: str, conversation_id: str,
                                         action: Callable[[Any, Any], Awaitable[Any]],
                                         racer: Callable[[Any], Awaitable[Any]]) -> tuple[Any, Any]:
    """Run the conversation ``action(uow, conversation)`` until it has written the conversation row and is about
    to lock the routing task (``do_sync_conversation``); start ``racer(uow)`` in another transaction, let the
    action go on once the racer waits on a lock (or finished), and return both outcomes (result or error)."""
    action_uow, racer_uow = runtime.unit_of_work(), runtime.unit_of_work()
    reached, resume = asyncio.Event(), asyncio.Event()
    sync = routing_actions.do_sync_conversation

    async def paused_sync(uow: Any, **kwargs: Any) -> Any:
        if uow is action_uow:
            reached.set()
            await resume.wait()
        return await sync(uow, **kwargs)

    monkeypatch.setattr(routing_actions, "do_sync_conversation", paused_sync)

    async def outcome(uow: Any, work: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await work()
            await uow.commit()
            return result
        except Exception as exc:  # noqa: BLE001 - the test looks at what each side got
            return exc

    async def run_action() -> Any:
        conversation = await conversation_service.access_conversation(
            session=action_uow.session, tenant_id=tenant_id, conversation_id=conversation_id)
        return await action(action_uow, conversation)

    try:
        first = asyncio.create_task(outcome(action_uow, run_action))
        await asyncio.wait_for(reached.wait(), 20)
        pid = await _backend_pid(racer_uow)
        second = asyncio.create_task(outcome(racer_uow, lambda: racer(racer_uow)))
        await _until_waiting_or_done(runtime, pid, second)
        resume.set()
        return await asyncio.wait_for(first, 20), await asyncio.wait_for(second, 20)
    finally:
        await action_uow.session.close()
        await racer_uow.session.close()


async def _offered_conversation(runtime: Runtime, **queue: Any) -> tuple[Engine, str, str]:
    """A tenant with one agent and a customer's conversation whose task is offered to (or, with ``auto_accept``,
    waiting for) that agent; returns (engine, conversation id, task id)."""
    engine = Engine(runtime, await create_tenant(runtime))
    await engine.agent(chat=1)
    await engine.workflow({"queue_id": await engine.queue(offer_timeout_seconds=600, **queue)})
    conversation_id, _contact = await start_conversation(runtime, engine.tenant)
    engine.advance(1)
    async with runtime.sessionmaker() as session:
        task_id = await session.scalar(select(Task.id).where(Task.conversation_id == conversation_id))
    return engine, conversation_id, task_id


async def _resolve(uow: Any, conversation: Any) -> Any:
    return await conversation_actions.do_change_status(uow, conversation=conversation, status="resolved")


async def test_resolving_a_conversation_while_its_offer_is_accepted_does_not_deadlock(  # type: ignore[no-untyped-def]
        postgres_url: str, monkeypatch) -> None:
    """The customer's conversation is resolved while the agent accepts its offer. Taken in opposite orders (the
    action: conversation then task; the accept: task then conversation), PostgreSQL aborted one of the two as
    a deadlock, a server error for the agent or for the customer."""
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine, conversation_id, task_id = await _offered_conversation(runtime)
        assert await engine.route() == 1
        offer = await engine.offer_of(task_id)

        async def accept(uow: Any) -> Any:
            found = await uow.session.get(Offer, offer.id)
            return await routing_actions.do_accept_offer(uow, offer=found, agent_id=offer.agent_id)

        resolved, accepted = await _race_after_conversation_write(
            runtime, monkeypatch, tenant_id=engine.tenant.id, conversation_id=conversation_id,
            action=_resolve, racer=accept)
        # The resolution went through; the accept, which came second, is refused as a plain conflict.
        assert not isinstance(resolved, Exception), resolved
        assert isinstance(accepted, DomainError) and (accepted.code, accepted.status) == ("offer_not_pending", 409)
        task = await engine.get_task(task_id)
        assert (task.status, task.end_reason) == ("canceled", "abandoned")
        assert [o.status for o in await engine.offers(None)] == ["canceled"]
    finally:
        await close_runtime(runtime)


async def test_reassigning_a_conversation_while_its_task_is_transferred_does_not_deadlock(  # type: ignore[no-untyped-def]
        postgres_url: str, monkeypatch) -> None:
    """A supervisor gives an agent's conversation to someone else while another transfers its task to a queue
    (which takes the conversation from the agent): in opposite orders, a deadlock."""
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine, conversation_id, task_id = await _offered_conversation(runtime)
        assert await engine.route() == 1
        await engine.accept(await engine.offer_of(task_id))  # the agent holds the conversation
        other_queue = await engine.queue(name="other", offer_timeout_seconds=600)
        supervisor = await engine.agent(chat=1, presence="away")

        async def assign(uow: Any, conversation: Any) -> Any:
            return await conversation_actions.do_update_conversation(uow, conversation=conversation,
                                                                     changes={"assignee_id": supervisor})

        async def transfer(uow: Any) -> Any:
            task = await uow.session.get(Task, task_id)
            return await routing_actions.do_transfer_task(uow, task=task, queue_id=other_queue, agent_id=None)

        assigned, transferred = await _race_after_conversation_write(
            runtime, monkeypatch, tenant_id=engine.tenant.id, conversation_id=conversation_id,
            action=assign, racer=transfer)
        # The assignment came first: the transfer was decided on a task that changed since, and is refused.
        assert not isinstance(assigned, Exception), assigned
        assert isinstance(transferred, DomainError) and (transferred.code, transferred.status) == (
            "version_conflict", 409), transferred
        task = await engine.get_task(task_id)
        assert (task.status, task.agent_id) == ("assigned", supervisor)
    finally:
        await close_runtime(runtime)


async def test_an_auto_accepting_pass_skips_a_conversation_being_resolved(  # type: ignore[no-untyped-def]
        postgres_url: str, monkeypatch) -> None:
    """A pass holds its waiting tasks' locks; auto-accepting assigns their conversations too. A conversation
    action holding a conversation and waiting for its task must not make the pass wait for it in turn."""
    runtime = build_runtime(make_settings(postgres_url))
    try:
        engine, conversation_id, task_id = await _offered_conversation(runtime, auto_accept=True)

        async def route(uow: Any) -> Any:
            return await routing_actions.route_tenant(uow, tenant_id=engine.tenant.id, now=engine.now)

        resolved, made = await _race_after_conversation_write(
            runtime, monkeypatch, tenant_id=engine.tenant.id, conversation_id=conversation_id,
            action=_resolve, racer=route)
        assert not isinstance(resolved, Exception), resolved
        assert made == 0, made  # left for a later pass, which finds it resolved
        task = await engine.get_task(task_id)
        assert (task.status, task.end_reason) == ("canceled", "abandoned")
        assert await engine.offers(None) == []
        assert await engine.route() == 0
    finally:
        await close_runtime(runtime)
