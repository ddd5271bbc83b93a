"""Two webhooks for one order at the same time on PostgreSQL (two nodes, or two workers of one node): the newer
revision wins whatever the order of arrival, and every change the order goes through gets its own version, so
If-Match keeps meaning "the copy I saw".

The two deliveries are interleaved on purpose: the first one's transaction is still open when the second one
starts, and commits only once the second one waits on a lock in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, text

from kefu.commerce import actions as commerce_actions
from kefu.commerce.models import CommerceConnector, CommerceOrder
from kefu.commerce.schemas import ConnectorCreate
from kefu.events import types as ev
from kefu.events.models import OutboxEvent
from kefu.integrations.commerce.normalizers import normalize
from kefu.runtime import Runtime, build_runtime
from tests.conftest import close_runtime, make_settings
from tests.factories import create_tenant


def _revision(version: int, status: str) -> dict[str, Any]:
    return {"order_id": "R1", "marketplace": "shop", "status": status, "currency": "CNY",
            "created_at": "2026-11-20T00:00:00Z", "updated_at": f"2026-11-21T0{version}:00:00Z",
            "source_version": version, "subtotal": "100.00", "total_paid": "100.00",
            "items": [{"line_id": "L1", "sku": "S", "title": "t", "quantity": 1, "unit_price": "100.00",
                       "paid": "100.00"}]}


async def _deliver(runtime: Runtime, connector: CommerceConnector, version: int, status: str, *,
                   hold: asyncio.Event | None = None, reached: asyncio.Event | None = None) -> str:
    """One webhook delivery as the endpoint runs it; with ``hold`` its transaction stays open until set."""
    uow = runtime.unit_of_work()
    try:
        event, _ = await commerce_actions.do_receive_webhook(
            uow, connector=connector, event_id=f"evt-{version}", type="order.updated",
            payload={"rev": version}, order=normalize("canonical", _revision(version, status)))
        if reached is not None:
            reached.set()
        if hold is not None:
            await hold.wait()
        await uow.commit()
        return event.outcome
    finally:
        await uow.session.close()


async def _someone_waits_on_a_lock(runtime: Runtime, racing: asyncio.Task[str]) -> bool:
    """True once a session of this database waits on a lock; False if ``racing`` ends first (it did not
    block) or nothing blocks within the deadline, which is generous because a loaded machine (the suite beside
    a benchmark) can take seconds to get the second delivery that far."""
    deadline = asyncio.get_running_loop().time() + 30
    async with runtime.sessionmaker() as session:
        while not racing.done() and asyncio.get_running_loop().time() < deadline:
            waiting = await session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))
            if waiting:
                return True
            await asyncio.sleep(0.01)
    return False


@pytest.mark.parametrize("first", [3, 4])
async def test_parallel_webhooks_end_at_the_newest_revision_with_distinct_versions(postgres_url: str,
                                                                                   first: int) -> None:
    runtime = build_runtime(make_settings(postgres_url))
    try:
        tenant = await create_tenant(runtime)
        uow = runtime.unit_of_work()
        try:
            connector = await commerce_actions.do_create_connector(
                uow, tenant_id=tenant.id, actor=None,
                data=ConnectorCreate(name="ERP", kind="demo_shop", webhook_format="canonical"))
            await uow.commit()
        finally:
            await uow.session.close()
        assert await _deliver(runtime, connector, 2, "paid") == "applied"

        second = 7 - first
        statuses = {3: "shipped", 4: "delivered"}
        release, reached = asyncio.Event(), asyncio.Event()
        held = asyncio.create_task(_deliver(runtime, connector, first, statuses[first], hold=release,
                                            reached=reached))
        await reached.wait()  # the first delivery has read and changed the order; not committed yet
        racing = asyncio.create_task(_deliver(runtime, connector, second, statuses[second]))
        assert await _someone_waits_on_a_lock(runtime, racing)  # the second one waits for the first one's row
        release.set()
        outcomes = {first: await held, second: await racing}

        async with runtime.sessionmaker() as session:
            row = (await session.scalars(select(CommerceOrder).where(CommerceOrder.tenant_id == tenant.id))).one()
            updates = (await session.scalars(select(OutboxEvent).where(
                OutboxEvent.tenant_id == tenant.id, OutboxEvent.type == ev.ORDER_UPDATED)
                .order_by(OutboxEvent.id))).all()
        assert (row.source_version, row.status) == (4, "delivered")
        versions = [e.data["version"] for e in updates]
        assert len(versions) == len(set(versions)) and row.version == max(versions)
        if first == 3:  # 3 then 4: two changes, two versions
            assert outcomes == {3: "applied", 4: "applied"} and versions == [2, 3]
        else:  # 4 then 3: the late revision 3 is stale and changes nothing
            assert outcomes == {4: "applied", 3: "stale"} and versions == [2]
    finally:
        await close_runtime(runtime)
