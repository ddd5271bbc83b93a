"""Order actions interrupted between claim and settle (a crash, a deploy, a cancelled request) never block the
order for good, and running them again refunds exactly once (the order system de-duplicates by key)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

import kefu.integrations.commerce  # noqa: F401  (connector kinds)
from kefu.commerce import actions as commerce_actions
from kefu.commerce import policies
from kefu.commerce import service as commerce_service
from kefu.commerce import workers as commerce_workers
from kefu.commerce.models import CommerceAction
from kefu.commerce.schemas import ConnectorCreate, LineQuantity, Order, OrderView, RefundCreate, ReturnLine
from kefu.commerce.sources import hub_of
from kefu.core.clock import utcnow
from kefu.core.errors import DomainError
from kefu.runtime import Runtime
from tests.commerce.fake_shop import FakeShop
from tests.conftest import runtime_on
from tests.factories import create_tenant


@pytest.fixture
async def rt(db_url: str) -> AsyncIterator[Runtime]:
    async with runtime_on(db_url) as runtime:
        yield runtime


async def _fresh(rt: Runtime, tenant_id: str, number: str) -> OrderView:
    view = (await commerce_service.find_orders(runtime=rt, tenant_id=tenant_id, order_number=number)).orders[0]
    return await commerce_service.get_order(runtime=rt, tenant_id=tenant_id, order_ref=view.id, max_age=0)


async def _crash_after_the_source_refunded(rt: Runtime, tenant_id: str, view: OrderView, line: str,
                                           key: str) -> str:
    """What a node that dies between claim and settle leaves behind: the action claimed (``pending``) and the
    refund performed by the order system under the action's source key, but never settled in Kefu."""
    data = RefundCreate(lines=[LineQuantity(line_id=line, quantity=1)])
    request = data.model_dump(mode="json")

    async def plan(order: Order, rules: policies.CommerceRules) -> dict[str, Any]:
        quote = policies.refund_quote(order, data.lines, rules)
        return {"amount": quote.total, "items": quote.total - quote.shipping, "shipping": quote.shipping}

    action, p = await commerce_actions._claim(
        rt, tenant_id=tenant_id, actor=None, view=view, kind="request_refund", key=key,
        request_hash=commerce_actions._request_hash("request_refund", view.id, request), request=request,
        expected_version=view.version, planner=plan)
    source = hub_of(rt).sources[(tenant_id, "demo_shop")].source
    await source.request_refund(view.order.order_id, amount=p["items"], shipping=p["shipping"], reason="no_reason",
                                lines=[ReturnLine(line_id=line, quantity=1)], idempotency_key=f"{tenant_id}:{key}")
    return action.id


async def _age(rt: Runtime, action_id: str, seconds: float) -> None:
    """Let ``seconds`` pass since the claim (the crash happened that long ago)."""
    async with rt.sessionmaker() as session:
        await session.execute(update(CommerceAction).where(CommerceAction.id == action_id)
                              .values(claimed_at=utcnow() - timedelta(seconds=seconds)))
        await session.commit()


async def _action(rt: Runtime, action_id: str) -> CommerceAction:
    async with rt.sessionmaker() as session:
        row = await session.get(CommerceAction, action_id)
    assert row is not None
    return row


async def _refund(rt: Runtime, tenant_id: str, ref: str, line: str, key: str) -> Any:
    try:
        return await commerce_actions.do_request_refund(
            rt, tenant_id=tenant_id, actor=None, order_ref=ref, idempotency_key=key,
            data=RefundCreate(lines=[LineQuantity(line_id=line, quantity=1)]))
    except DomainError as exc:
        return exc


async def test_a_retry_after_a_crash_between_claim_and_settle_refunds_exactly_once(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    view = await _fresh(rt, tenant.id, "DS100001")
    action_id = await _crash_after_the_source_refunded(rt, tenant.id, view, "L1", "crash-1")

    # Just after the crash nobody can tell it from an action still running: no second run, no other refund.
    early = await _refund(rt, tenant.id, view.id, "L1", "crash-1")
    assert isinstance(early, DomainError) and early.code == "idempotency_in_progress"
    other = await _refund(rt, tenant.id, view.id, "L2", "other-1")
    assert isinstance(other, DomainError) and other.code == "order_action_in_progress"
    assert other.details == {"action_id": action_id, "abandoned": False}

    # Past the call timeout plus the margin it is abandoned: the retry runs it again under the same key.
    await _age(rt, action_id, hub_of(rt).abandoned_after + 1)
    result = await _refund(rt, tenant.id, view.id, "L1", "crash-1")
    assert not isinstance(result, DomainError), result
    assert result.id == action_id and result.status == "succeeded" and result.amount == view.order.items[0].paid
    after = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id, max_age=0)
    assert len(after.order.refunds) == 1 and after.order.refunded_total == view.order.items[0].paid
    # Retrying once more answers the settled action and changes nothing.
    again = await _refund(rt, tenant.id, view.id, "L1", "crash-1")
    assert again.id == action_id and again.status == "succeeded"
    final = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id, max_age=0)
    assert len(final.order.refunds) == 1


async def test_the_background_pass_and_the_next_action_finish_abandoned_actions(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    view = await _fresh(rt, tenant.id, "DS100001")
    first = await _crash_after_the_source_refunded(rt, tenant.id, view, "L1", "crash-a")
    await _age(rt, first, hub_of(rt).abandoned_after + 1)
    totals = await commerce_workers.run_pass(rt)
    assert totals["resumed"] >= 1
    settled = await _action(rt, first)
    assert settled.status == "succeeded" and settled.finished_at is not None and settled.claimed_at is not None

    # Another crash on the same order; this time the next refund (another key) finishes it before its own.
    view = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id, max_age=0)
    second = await _crash_after_the_source_refunded(rt, tenant.id, view, "L2", "crash-b")
    await _age(rt, second, hub_of(rt).abandoned_after + 1)
    third = await _refund(rt, tenant.id, view.id, "L3", "next-c")
    assert not isinstance(third, DomainError), third
    assert third.status == "succeeded" and (await _action(rt, second)).status == "succeeded"
    after = await commerce_service.get_order(runtime=rt, tenant_id=tenant.id, order_ref=view.id, max_age=0)
    assert sorted(len(r.lines) for r in after.order.refunds) == [1, 1, 1]
    assert {ln.line_id for r in after.order.refunds for ln in r.lines} == {"L1", "L2", "L3"}
    async with rt.sessionmaker() as session:
        pending = (await session.scalars(select(CommerceAction).where(CommerceAction.tenant_id == tenant.id,
                                                                      CommerceAction.status == "pending"))).all()
    assert pending == []


async def test_a_cancelled_request_settles_as_retryable_and_the_retry_refunds_once(rt: Runtime) -> None:
    tenant = await create_tenant(rt)
    shop = FakeShop()
    try:
        uow = rt.unit_of_work()
        try:
            await commerce_actions.do_create_connector(
                uow, tenant_id=tenant.id, actor=None, data=ConnectorCreate(
                    name="ERP", kind="rest", marketplace="erp", webhook_format="mapped", config=shop.config()))
            await uow.commit()
        finally:
            await uow.session.close()
        found = await commerce_service.find_orders(runtime=rt, tenant_id=tenant.id, order_number="E1002")
        ref = found.orders[0].id
        shop.delay = 0.3  # the order system thinks for a moment: long enough to give up on the request
        task = asyncio.create_task(_refund(rt, tenant.id, ref, "A", "cancel-1"))
        for _ in range(500):
            if "POST /api/orders/E1002/refund" in shop.calls:
                break
            await asyncio.sleep(0.01)
        assert "POST /api/orders/E1002/refund" in shop.calls
        task.cancel()  # the client went away, or the node is shutting down
        with pytest.raises(asyncio.CancelledError):
            await task
        async with rt.sessionmaker() as session:
            action = (await session.scalars(select(CommerceAction).where(
                CommerceAction.tenant_id == tenant.id, CommerceAction.idempotency_key == "cancel-1"))).one()
        assert (action.status, action.error_code) == ("failed", "order_system_unavailable")  # not pending

        shop.delay = 0.0
        result = await _refund(rt, tenant.id, ref, "A", "cancel-1")
        assert not isinstance(result, DomainError), result
        assert result.id == action.id and result.status == "succeeded" and str(result.amount) == "99.00"
        assert len(shop.done) == 1  # the order system refunded once, whatever reached it first
        assert shop.orders["E1002"]["refunded"] == "99.00"
    finally:
        shop.stop()


async def test_an_order_changed_between_the_two_reads_is_a_clear_error(rt: Runtime) -> None:
    from kefu.commerce.schemas import PriceProtectionClaim

    tenant = await create_tenant(rt)
    view = await _fresh(rt, tenant.id, "DS100003")
    source = hub_of(rt).sources[(tenant.id, "demo_shop")].source
    # The shop splits the order: line L2 is gone when the action re-reads it.
    source._built[view.order.order_id] = view.order.model_copy(update={
        "items": view.order.items[:1], "source_version": (view.order.source_version or 0) + 1,
        "total_paid": view.order.items[0].paid + view.order.shipping_fee,
        "subtotal": view.order.items[0].unit_price * view.order.items[0].quantity})
    with pytest.raises(DomainError) as refused:
        await commerce_actions.do_claim_price_protection(
            rt, tenant_id=tenant.id, actor=None, order_ref=view.id, data=PriceProtectionClaim(line_id="L2"),
            idempotency_key="pp-1")
    assert refused.value.code == "unknown_order_line" and refused.value.status == 422
    async with rt.sessionmaker() as session:
        stored = (await session.scalars(select(CommerceAction).where(CommerceAction.tenant_id == tenant.id))).all()
    assert stored == []
