"""Retrains of one tenant at the same time: distinct versions, no 500, and every node ends on the stored model."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from kefu.core.errors import Conflict
from kefu.nlp import actions as nlp_actions
from kefu.nlp import service as nlp_service
from kefu.nlp.models import NluModel
from kefu.nlp.pipeline import registry
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import create_tenant

EXAMPLES = ["能帮我包装成礼物吗", "可以礼品包装吗", "需要礼物包装", "can you gift wrap it", "please wrap it as a present"]


async def _add_examples(runtime: Runtime, tenant_id: str, texts: list[str]) -> None:
    uow = runtime.unit_of_work()
    try:
        await nlp_actions.do_add_examples(uow, tenant_id=tenant_id, intent="track_order", texts=texts)
        await uow.commit()
    finally:
        await uow.session.close()


async def _retrain(runtime: Runtime, tenant_id: str) -> int | str:
    """One retrain in its own transaction: the version it committed, or the code it was refused with."""
    uow = runtime.unit_of_work()
    try:
        model, _ = await nlp_actions.do_retrain(uow, tenant_id=tenant_id)
        version = model.version
        await uow.commit()
        return version
    except Conflict as exc:
        return exc.code
    finally:
        await uow.session.close()


async def _stored(runtime: Runtime, tenant_id: str) -> NluModel:
    async with runtime.sessionmaker() as session:
        model = await session.scalar(select(NluModel).where(NluModel.tenant_id == tenant_id))
        assert model is not None
        return model


async def _current_hash(runtime: Runtime, tenant_id: str) -> str:
    async with runtime.sessionmaker() as session:
        examples, patterns = await nlp_service.training_data(session=session, tenant_id=tenant_id)
    return nlp_service.training_data_hash(examples=examples, patterns=patterns)


async def test_concurrent_retrains_never_share_a_version(db_url: str) -> None:
    runtime = build_runtime(make_settings(db_url))
    try:
        tenant = await create_tenant(runtime)
        await _add_examples(runtime, tenant.id, EXAMPLES)
        outcomes: list[int | str] = []
        # Round one races for the first model row (unique per tenant), round two for the existing one.
        for _ in range(2):
            outcomes += await asyncio.gather(*(_retrain(runtime, tenant.id) for _ in range(3)))
        versions = [o for o in outcomes if isinstance(o, int)]
        assert set(outcomes) - set(versions) <= {"nlu_training_in_progress"}, outcomes
        assert sorted(versions) == list(range(1, len(versions) + 1)), outcomes  # distinct, no gap
        stored = await _stored(runtime, tenant.id)
        assert stored.version == len(versions)
        assert stored.data_hash == await _current_hash(runtime, tenant.id)
    finally:
        await close_runtime(runtime)


async def test_a_second_retrain_while_one_holds_the_model_is_refused(postgres_url: str) -> None:
    runtime = build_runtime(make_settings(postgres_url))
    try:
        tenant = await create_tenant(runtime)
        await _add_examples(runtime, tenant.id, EXAMPLES)
        first = runtime.unit_of_work()
        try:
            model, _ = await nlp_actions.do_retrain(first, tenant_id=tenant.id)  # trained, not yet committed
            assert model.version == 1
            assert await asyncio.wait_for(_retrain(runtime, tenant.id), 30) == "nlu_training_in_progress"
            await first.commit()
        finally:
            await first.session.close()
        await _add_examples(runtime, tenant.id, ["where did my parcel go"])
        assert await _retrain(runtime, tenant.id) == 2
        stored = await _stored(runtime, tenant.id)
        assert (stored.version, stored.data_hash) == (2, await _current_hash(runtime, tenant.id))
    finally:
        await close_runtime(runtime)


async def test_a_node_reloads_when_its_model_was_trained_on_other_data(runtime: Runtime) -> None:
    tenant = await create_tenant(runtime)
    await _add_examples(runtime, tenant.id, EXAMPLES)
    assert await _retrain(runtime, tenant.id) == 1
    stored = await _stored(runtime, tenant.id)
    # This node holds version 1 trained on something else (as after two retrains that both wrote version 1).
    stale = nlp_service.build_pipeline(examples=[], patterns=[], version=1)
    registry.forget(tenant.id)
    registry.install(tenant.id, 1, stale, "0" * 64)
    nlp_service.forget_checks(tenant.id)
    try:
        async with runtime.sessionmaker() as session:
            pipeline = await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id)
        assert pipeline is not stale
        assert registry.tenant_state(tenant.id) == (1, stored.data_hash)
        nlp_service.forget_checks(tenant.id)
        async with runtime.sessionmaker() as session:  # and it does not retrain again on the next check
            assert await nlp_service.ensure_tenant_pipeline(session=session, tenant_id=tenant.id) is pipeline
    finally:
        registry.forget(tenant.id)
        nlp_service.forget_checks(tenant.id)
