"""The knowledge base on SQLite and PostgreSQL: the demo KB import, the bot seam, counters under concurrency."""

from __future__ import annotations

import asyncio
import uuid

from kefu.knowledge import actions as knowledge_actions
from kefu.knowledge import demo as knowledge_demo
from kefu.knowledge import service as knowledge_service
from kefu.runtime import Runtime, build_runtime
from kefu.tenants import actions as tenant_actions
from kefu.tenants.schemas import TenantCreate
from tests.conftest import close_runtime, make_settings


async def _tenant_with_demo_kb(rt: Runtime) -> str:
    uow = rt.unit_of_work()
    try:
        slug = f"kb-{uuid.uuid4().hex[:10]}"
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name=slug))
        first = await knowledge_demo.seed_demo_kb(uow, tenant_id=tenant.id)
        await uow.commit()
        again = await knowledge_demo.seed_demo_kb(uow, tenant_id=tenant.id)
        await uow.commit()
    finally:
        await uow.session.close()
    assert first.created == 76 and first.errors == []
    assert again.created == 0 and again.updated == 0 and again.unchanged == 76
    return tenant.id


async def test_demo_kb_answers_and_counts_every_concurrent_answer(db_url: str) -> None:
    rt = build_runtime(make_settings(db_url))
    try:
        tenant_id = await _tenant_with_demo_kb(rt)
        async with rt.sessionmaker() as session:
            shipping = await knowledge_service.answer(session=session, tenant_id=tenant_id,
                                                      question="退货运费谁出？", language="zh", channel="webchat")
            chatter = await knowledge_service.answer(session=session, tenant_id=tenant_id,
                                                     question="what's the weather like in Hangzhou today")
        assert shipping.decision == "answer" and shipping.id is None
        assert chatter.decision == "handoff"

        async def ask() -> str:
            uow = rt.unit_of_work()
            try:
                result = await knowledge_actions.do_answer(uow, tenant_id=tenant_id, question="退货运费谁出？",
                                                           language="zh")
                answer = await knowledge_service.access_answer(session=uow.session, tenant_id=tenant_id,
                                                               answer_id=result.id)
                await knowledge_actions.do_record_feedback(uow, answer=answer, helpful=True)
                await uow.commit()
                return result.best.id  # type: ignore[union-attr]
            finally:
                await uow.session.close()

        entry_ids = await asyncio.gather(*(ask() for _ in range(12)))
        assert set(entry_ids) == {shipping.best.id}  # type: ignore[union-attr]
        async with rt.sessionmaker() as session:
            entry = await knowledge_service.access_entry(session=session, tenant_id=tenant_id,
                                                         entry_id=entry_ids[0])
            assert (entry.answers_given, entry.helpful) == (12, 12)
    finally:
        await close_runtime(rt)
