"""The service API other parts call (bot, agent UI), on both databases, and the proactive stuck-parcel events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

import kefu.integrations.commerce  # noqa: F401  (connector kinds)
from kefu.commerce import actions as commerce_actions
from kefu.commerce import service as commerce_service
from kefu.commerce import workers as commerce_workers
from kefu.commerce.schemas import LineQuantity, RefundCreate
from kefu.commerce.sources import CircuitBreaker, hub_of
from kefu.events import types as ev
from kefu.events.models import OutboxEvent
from kefu.runtime import Runtime
from tests.conftest import runtime_on
from tests.factories import create_tenant


@pytest.fixture
async def rt(db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(db_url) as runtime:
        yield runtime


async def _events(runtime: Runtime, tenant_id: str, kind: str) -> list[OutboxEvent]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.tenant_id == tenant_id,
                                                               OutboxEvent.type == kind).order_by(OutboxEvent.id))
        return list(rows.all())


async def test_service_api_finds_details_and_refunds(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    found = await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, buyer_id="c1001")
    assert not found.degraded and len(found.orders) >= 11
    assert {v.order.status for v in found.orders} >= {"unpaid", "paid", "shipped", "delivered", "partially_refunded",
                                                      "returned", "pre_sale", "cancelled", "completed"}
    refs = commerce_service.extract_order_refs("我的订单 DS100001 怎么还没到？运单号 sf7000000000")
    assert refs == {"order_numbers": ["DS100001"], "tracking_numbers": ["SF7000000000"]}
    by_number = await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, order_number="DS100001")
    view = by_number.orders[0]
    detail = await commerce_service.order_detail(runtime=rt, tenant_id=tenant.id, order_ref=view.id)
    assert detail.view.id == view.id and detail.returns
    again = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id)
    assert again.freshness.source == "cache" and again.order == view.order
    result = await commerce_actions.do_request_refund(rt, tenant_id=tenant.id, actor=None, order_ref=view.id,
                                                      data=RefundCreate(lines=[LineQuantity(line_id="L1", quantity=1)]),
                                                      idempotency_key="svc-1")
    assert result.status == "succeeded" and result.order is not None
    assert (await _events(rt, tenant.id, ev.ORDER_ACTION_COMPLETED))[0].data["action"]["id"] == result.id
    updated = await _events(rt, tenant.id, ev.ORDER_UPDATED)
    assert updated and updated[-1].data["order_ref"] == view.id


async def test_stuck_parcels_are_announced_once(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, buyer_id="c1001")
    await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, buyer_id="c1002")
    first = await commerce_workers.scan_stuck(rt, tenant_id=tenant.id, batch=2)  # in batches: none left out
    assert first >= 1  # the demo shop's first customer has a delayed parcel
    events = await _events(rt, tenant.id, ev.SHIPMENT_STUCK)
    assert len(events) == first
    data = events[0].data
    assert data["order_ref"].startswith("ord_") and data["hours"] > data["expected_hours"] and data["node"]
    assert await commerce_workers.scan_stuck(rt, tenant_id=tenant.id) == 0
    # The worker's scheduled pass (what every node runs) announces nothing twice either.
    await commerce_workers.run_pass(rt)
    assert len(await _events(rt, tenant.id, ev.SHIPMENT_STUCK)) == first


async def test_the_scheduled_pass_announces_stuck_parcels(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, buyer_id="c1001")
    totals = await commerce_workers.run_pass(rt)
    assert totals["stuck"] >= 1
    stuck = await _events(rt, tenant.id, ev.SHIPMENT_STUCK)
    assert stuck and all(e.data["hours"] > e.data["expected_hours"] for e in stuck)


async def test_stale_answers_come_at_once_and_are_revalidated_in_the_background(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    view = (await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, order_number="DS100003")).orders[0]
    hub = hub_of(rt)
    entry = hub.sources[(tenant.id, "demo_shop")]
    changed = view.order.model_copy(update={"status": "completed", "source_version": 9})
    entry.source._built[view.order.order_id] = changed  # the shop changed the order; nobody told us
    hub.fresh_seconds = 0.0
    stale = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id)
    assert stale.order.status == view.order.status and stale.freshness.source == "cache"
    await asyncio.gather(*list(hub.tasks))
    hub.fresh_seconds = 30.0
    fresh = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id)
    assert fresh.order.status == "completed" and fresh.version == view.version + 1


def test_the_breaker_opens_after_failures_and_tries_again_after_its_cool_down() -> None:
    clock = [100.0]  # the breaker's clock, moved by hand: no real waiting, nothing a slow machine can break
    breaker = CircuitBreaker(failures=3, cooldown=10.0, now=lambda: clock[0])
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock[0] += 9.99
    assert breaker.state == "open" and not breaker.allow()  # still cooling down
    clock[0] += 0.01
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one trial call at a time
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()  # the trial failed: a whole new cool-down
    clock[0] += 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.failures == 0


async def test_concurrent_refunds_on_one_version_refund_once(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    view = (await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, order_number="DS100001")).orders[0]
    view = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id, max_age=0)
    data = RefundCreate(lines=[LineQuantity(line_id="L1", quantity=1)])
    results = await asyncio.gather(*(
        commerce_actions.do_request_refund(rt, tenant_id=tenant.id, actor=None, order_ref=view.id, data=data,
                                           idempotency_key=f"race-{n}", expected_version=view.version)
        for n in range(4)), return_exceptions=True)
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(succeeded) == 1 and len(refused) == 3
    assert all(getattr(r, "code", None) in ("version_conflict", "order_action_in_progress") for r in refused)
    after = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id, max_age=0)
    assert len(after.order.refunds) == 1
