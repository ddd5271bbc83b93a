"""Retrains of one tenant at the same time: distinct versions, no 500, and every node ends on the stored model."""

from __future__ import annotations

import asyncio

from kefu.nlp import actions as nlp_actions
from kefu.nlp import service as nlp_service
from kefu.nlp.pipeline import registry
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import create_tenant
from tests.nlp.retraining import EXAMPLES, add_examples, current_hash, retrain, stored, thread_work_held, trained_tenant


async def test_concurrent_retrains_never_share_a_version(db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    try:
        tenant = await create_tenant(runtime)
        await add_examples(runtime, tenant.id, EXAMPLES)
        # Round one races for the first model row (unique per tenant), round two for the existing one. The
        # first claim keeps the other two out while it trains, on both databases (SQLite used to queue them
        # behind the whole training instead). The training waits until the other two have been answered.
        for round_ in (1, 2):
            async with thread_work_held(asyncio.get_running_loop()) as release:
                retrains = [asyncio.create_task(retrain(runtime, tenant.id)) for _ in range(3)]
                try:
                    while sum(task.done() for task in retrains) < 2:
                        await asyncio.sleep(0.01)
                finally:
                    release()
                    outcomes = await asyncio.gather(*retrains)
            assert sorted(outcomes, key=str) == [round_, "nlu_training_in_progress", "nlu_training_in_progress"]
        model = await stored(runtime, tenant.id)
        assert model is not None and (model.version, model.status) == (2, "ready")
        assert model.data_hash == await current_hash(runtime, tenant.id)
    finally:
        await close_runtime(runtime)


async def test_a_retrain_is_refused_while_another_holds_its_claim(db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    try:
        tenant = await create_tenant(runtime)
        await add_examples(runtime, tenant.id, EXAMPLES)
        first = runtime.unit_of_work()
        try:
            claim = await nlp_actions.claim_retrain(first, tenant_id=tenant.id)
            await first.commit()
        finally:
            await first.session.close()
        # Claimed and committed, not trained: no transaction is open, yet the model is held.
        assert await asyncio.wait_for(retrain(runtime, tenant.id), 30) == "nlu_training_in_progress"
        pipeline = await asyncio.to_thread(nlp_actions.train_claimed, claim)
        finish = runtime.unit_of_work()
        try:
            model = await nlp_actions.finish_retrain(finish, claim)
            await finish.commit()
        finally:
            await finish.session.close()
        assert (model.version, model.status, pipeline.version) == (1, "ready", "tenant-v1")
        await add_examples(runtime, tenant.id, ["where did my parcel go"])
        assert await retrain(runtime, tenant.id) == 2
        latest = await stored(runtime, tenant.id)
        assert latest is not None and (latest.version, latest.data_hash) == (2, await current_hash(runtime, tenant.id))
    finally:
        await close_runtime(runtime)


async def test_a_node_reloads_when_its_model_was_trained_on_other_data(runtime: Runtime) -> None:
    tenant, model = await trained_tenant(runtime)
    # This node holds version 1 trained on something else (as after two retrains that both wrote version 1).
    stale = nlp_service.build_pipeline(examples=[], patterns=[], version=1)
    registry.forget(tenant.id)
    registry.install(tenant.id, 1, stale, "0" * 64)
    nlp_service.forget_checks(tenant.id)
    try:
        async with runtime.sessionmaker() as session:
            pipeline = await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id)
        assert pipeline is not stale
        assert registry.tenant_state(tenant.id) == (1, model.data_hash)
        nlp_service.forget_checks(tenant.id)
        async with runtime.sessionmaker() as session:  # and it does not retrain again on the next check
            assert await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id) is pipeline
    finally:
        registry.forget(tenant.id)
        nlp_service.forget_checks(tenant.id)
