"""A node that reloads a tenant's model, and the analyse routes, hold no transaction while a model trains or
runs: on SQLite any transaction holds the database's only write lock."""

from __future__ import annotations

import asyncio

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from kefu.nlp import service as nlp_service
from kefu.nlp.pipeline import NluPipeline, registry
from kefu.runtime import Runtime
from tests.conftest import runtime_on
from tests.factories import create_tenant
from tests.nlp.retraining import EXAMPLES, add_examples, retrain, thread_work_held, trained_tenant


def _as_after_a_restart(tenant_id: str) -> None:
    registry.forget(tenant_id)
    nlp_service.forget_checks(tenant_id)


async def test_callers_wait_for_a_reload_with_no_transaction_open(runtime: Runtime) -> None:
    tenant, model = await trained_tenant(runtime)
    _as_after_a_restart(tenant.id)
    sessions = [runtime.sessionmaker() for _ in range(3)]
    began: set[int] = set()
    for i, session in enumerate(sessions):
        event.listen(session.sync_session, "after_begin", lambda *_, i=i: began.add(i))

    async def ensure(session: AsyncSession) -> NluPipeline:
        return await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id)

    late_caller = None
    async with thread_work_held(asyncio.get_running_loop()) as release:  # the reload's training waits for this
        callers = [asyncio.create_task(ensure(session)) for session in sessions[:2]]
        try:
            # Both read the stale version; one reloads and the other waits for it. Neither may hold a transaction
            # meanwhile (the waiter used to keep its read transaction, and so the write lock, through the reload).
            while not (began >= {0, 1} and not any(session.in_transaction() for session in sessions[:2])):
                assert not any(caller.done() for caller in callers), "a caller finished before the training did"
                await asyncio.sleep(0.01)
            await create_tenant(runtime)  # a writer of the same database goes on meanwhile
            assert not any(caller.done() for caller in callers)
            # A caller arriving during the reload waits for it, rather than being served the stale model.
            late_caller = asyncio.create_task(ensure(sessions[2]))
            while not (2 in began and not sessions[2].in_transaction()):
                assert not late_caller.done(), "the late caller was served before the reload"
                await asyncio.sleep(0.01)
        finally:
            release()
            late = await late_caller if late_caller is not None else None
            outcomes = await asyncio.gather(*callers, return_exceptions=True)
        for session in sessions:
            await session.close()
        _as_after_a_restart(tenant.id)
    assert late.version == "tenant-v1"
    assert all(outcome is late for outcome in outcomes), outcomes


async def test_reloads_of_one_tenant_in_two_event_loops(runtime: Runtime, sqlite_url: str) -> None:
    """One process may run several event loops (a server's beside the tests'): a loop's callers must not
    wait on another loop's lock."""
    tenant, _ = await trained_tenant(runtime)

    async def contended_reload() -> list[NluPipeline]:
        async with runtime_on(sqlite_url) as rt:  # an engine of the running loop
            sessions = [rt.sessionmaker() for _ in range(2)]
            try:
                return list(await asyncio.gather(*(
                    nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id) for session in sessions)))
            finally:
                for session in sessions:
                    await session.close()

    try:
        _as_after_a_restart(tenant.id)
        here = await contended_reload()
        _as_after_a_restart(tenant.id)
        there = await asyncio.to_thread(asyncio.run, contended_reload())
    finally:
        _as_after_a_restart(tenant.id)
    for first, second in (here, there):
        assert first is second and first.version == "tenant-v1"


async def test_a_check_leaves_the_callers_session_without_a_transaction(runtime: Runtime) -> None:
    """What the analyse routes and the bot rely on before they run the model in a thread: whichever way the
    check goes (no model yet, the loaded one is current, a reload), the caller holds no write lock after it."""
    tenant = await create_tenant(runtime)

    async def check() -> bool:
        nlp_service.forget_checks(tenant.id)
        async with runtime.sessionmaker() as session:
            await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id)
            return session.in_transaction()

    try:
        assert await check() is False  # no model yet
        await add_examples(runtime, tenant.id, EXAMPLES)
        assert await retrain(runtime, tenant.id) == 1
        assert await check() is False  # a reload
        assert await check() is False  # the loaded model is current
    finally:
        _as_after_a_restart(tenant.id)
