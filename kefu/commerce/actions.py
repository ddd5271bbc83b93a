"""Writes of the commerce domain: order snapshots, order actions (audited, idempotent, optimistically locked),
connectors, rules.

An order action runs in two short transactions around the call to the order system, so no database lock is
held while a remote system thinks:

1. claim: re-read the order from the source, lock our row, check ``If-Match`` against our version, refuse if
   another money action on the order is still pending, apply the rules (refund quote, eligibility), record the
   action as ``pending`` with its idempotency key, bump the order's version — commit. A second agent acting on
   the same version now gets 409, and a retry with the same key finds the action instead of acting again.
2. execute through the connector with the same idempotency key (the source de-duplicates too).
3. settle: store the order the source answered, mark the action succeeded/failed, audit it, emit
   ``order.action_completed`` — commit.

If the order system is unreachable in step 2, the action is marked failed with ``order_system_unavailable``;
retrying with the same key runs it again with the same connector key, so the source performs it at most once.
A cancellation between claim and settle (client gone, shutdown) settles it the same way. An action left
``pending`` by a crash is *abandoned* once its claim (``claimed_at``) is older than the connector call timeout
plus ``CommerceHub.abandoned_margin``: a retry with its key, the next action on the order, or the background
pass (``resume_abandoned``) runs it again under the same connector key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from kefu.audit import actions as audit_actions
from kefu.commerce import policies
from kefu.commerce import service as commerce_service
from kefu.commerce.models import (
    CommerceAction,
    CommerceConnector,
    CommerceOrder,
    CommerceOrderKey,
    CommerceSettings,
    CommerceWebhookEvent,
)
from kefu.commerce.ports import ActionOutcome, OrderSource, SourceDown, SourceUnavailable
from kefu.commerce.schemas import (
    ActionResult,
    AddressChangeRequest,
    CancelRequest,
    ConnectorCreate,
    Order,
    OrderView,
    PriceProtectionClaim,
    RefundCreate,
    ReturnCreate,
    ReturnLine,
)
from kefu.commerce.sources import CachedOrder, CommerceHub, hub_of
from kefu.core.clock import utcnow
from kefu.core.errors import Conflict, DomainError, NotFound, ValidationFailed, check_version
from kefu.core.ids import new_id
from kefu.events import types as ev
from kefu.events.uow import UnitOfWork

if TYPE_CHECKING:
    from kefu.auth.schemas import Principal
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.commerce.actions")
MONEY_KINDS = ("cancel", "request_refund", "claim_price_protection")


# --- snapshots ---------------------------------------------------------------------------------------------

def _older(order: Order, row: CommerceOrder) -> bool:
    """Out-of-order arrivals: the source's revision counter decides, else its updated-at time."""
    if order.source_version is not None and row.source_version is not None:
        return order.source_version < row.source_version
    if order.updated_at is not None and row.source_updated_at is not None:
        return order.updated_at < row.source_updated_at
    return False


def _event_data(row: CommerceOrder) -> dict[str, Any]:
    return {"order_ref": row.id, "order_id": row.order_id, "marketplace": row.marketplace, "status": row.status,
            "version": row.version, "buyer_id": row.buyer_id}


async def _replace_keys(uow: UnitOfWork, row: CommerceOrder, order: Order, *, fresh: bool) -> None:
    if not fresh:
        await uow.session.execute(delete(CommerceOrderKey).where(CommerceOrderKey.order_ref == row.id))
    for kind, value in sorted(commerce_service.order_keys(order)):
        uow.session.add(CommerceOrderKey(tenant_id=row.tenant_id, kind=kind, value=value, order_ref=row.id))


async def _lock_orders(uow: UnitOfWork, refs: list[str]) -> dict[str, CommerceOrder]:
    """Our rows of these orders, locked until the transaction ends (``FOR UPDATE`` in id order, so two writers of
    overlapping batches cannot deadlock; SQLite already serialises writers with ``BEGIN IMMEDIATE``) and re-read
    after the lock, so a change committed while we waited is what we compare with."""
    if not refs:
        return {}
    rows = await uow.session.scalars(
        select(CommerceOrder).where(CommerceOrder.id.in_(refs)).order_by(CommerceOrder.id).with_for_update()
        .execution_options(populate_existing=True))
    return {r.id: r for r in rows}


async def do_record_snapshots(uow: UnitOfWork, *, tenant_id: str, connector: str, orders: list[Order],
                              force: bool = False) -> list[CommerceOrder]:
    """Store the latest known copy of these orders (new ones, changed ones); an older copy than the stored one
    is ignored unless ``force`` (an action's own answer). Emits ``order.updated`` for changes of known orders.

    The compare-and-replace happens under a row lock, so two writers of one order (two webhooks, a webhook and
    reconciliation, two nodes) take turns: the later one sees the earlier one's revision and version, the
    older revision never overwrites the newer one and every change gets its own version.
    """
    now = utcnow()
    refs = {commerce_service.order_ref(tenant_id, connector, o): o for o in orders}
    rows = await _lock_orders(uow, sorted(refs))
    stored: dict[str, CommerceOrder] = {}
    for ref in sorted(refs):
        order = refs[ref]
        digest = commerce_service.data_hash(order)
        row = rows.get(ref)
        if row is None:
            new = CommerceOrder(id=ref, tenant_id=tenant_id, connector=connector, marketplace=order.marketplace,
                                order_id=order.order_id, status=order.status, buyer_id=order.buyer.buyer_id,
                                data=order.model_dump(mode="json"), data_hash=digest, version=1,
                                source_version=order.source_version, source_updated_at=order.updated_at,
                                ordered_at=order.created_at, fetched_at=now, updated_at=now)
            try:
                async with uow.session.begin_nested():
                    uow.session.add(new)
                    await uow.session.flush()
                    await _replace_keys(uow, new, order, fresh=True)
                    await uow.session.flush()
                stored[ref] = new
                continue
            except IntegrityError:  # another writer stored it first: lock theirs and compare with it
                row = await uow.session.get(CommerceOrder, ref, populate_existing=True, with_for_update=True)
                if row is None:
                    raise
        if row.tenant_id != tenant_id:
            continue  # cannot happen (the id hashes the tenant), but never cross tenants
        row.fetched_at = now
        if row.data_hash != digest and (force or not _older(order, row)):
            row.data = order.model_dump(mode="json")
            row.data_hash = digest
            row.status = order.status
            row.buyer_id = order.buyer.buyer_id
            row.source_version = order.source_version
            row.source_updated_at = order.updated_at
            row.version += 1
            row.updated_at = now
            await _replace_keys(uow, row, order, fresh=False)
            uow.emit(ev.ORDER_UPDATED, tenant_id=tenant_id, data=_event_data(row))
        stored[ref] = row
    await uow.session.flush()
    return [stored[ref] for ref in refs if ref in stored]


# --- order actions ---------------------------------------------------------------------------------------

Plan = dict[str, Any]
Planner = Callable[[Order, policies.CommerceRules], Awaitable[Plan]]
Executor = Callable[[OrderSource, Order, Plan, str], Awaitable[ActionOutcome]]


def _request_hash(kind: str, order_ref: str, request: dict[str, Any]) -> str:
    raw = json.dumps({"kind": kind, "order": order_ref, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def action_result(row: CommerceAction, view: OrderView | None = None) -> ActionResult:
    return ActionResult(id=row.id, kind=row.kind, status=row.status, order_ref=row.order_ref,  # type: ignore[arg-type]
                        idempotency_key=row.idempotency_key, amount=Decimal(row.amount) if row.amount else None,
                        currency=row.currency, external_ref=row.external_ref, error_code=row.error_code,
                        order=view, created_at=row.created_at)


def _dump_plan(plan: Plan) -> dict[str, Any]:
    return {k: format(v, "f") if isinstance(v, Decimal) else v for k, v in plan.items()}


def _load_plan(stored: dict[str, Any]) -> Plan:
    return {k: Decimal(v) if isinstance(v, str) else v for k, v in stored.items()}


def _abandoned(action: CommerceAction, hub: CommerceHub) -> bool:
    """A pending action whose claim is older than the call timeout plus a margin: nobody is running it any more
    (the node crashed or was redeployed between claim and settle)."""
    claimed = action.claimed_at or action.created_at
    return action.status == "pending" and claimed <= utcnow() - timedelta(seconds=hub.abandoned_after)


async def _claim(runtime: Runtime, *, tenant_id: str, actor: Principal | None, view: OrderView, kind: str,
                 key: str, request_hash: str, request: dict[str, Any], expected_version: int | None,
                 planner: Planner) -> tuple[CommerceAction, Plan]:
    hub = hub_of(runtime)
    uow = runtime.unit_of_work()
    try:
        session = uow.session
        row = (await session.scalars(select(CommerceOrder).where(CommerceOrder.id == view.id)
                                     .with_for_update())).one()
        check_version(row.version, expected_version)
        existing = (await session.scalars(select(CommerceAction).where(
            CommerceAction.tenant_id == tenant_id, CommerceAction.idempotency_key == key)
            .execution_options(populate_existing=True))).first()
        if existing is not None and (existing.status == "succeeded" or (
                existing.status == "pending" and not _abandoned(existing, hub)) or (
                existing.status == "failed" and existing.error_code != "order_system_unavailable")):
            raise Conflict("idempotency_in_progress")  # a twin retry claimed (or settled) it while we looked
        pending = (await session.scalars(select(CommerceAction).where(
            CommerceAction.order_ref == row.id, CommerceAction.status == "pending",
            CommerceAction.kind.in_(MONEY_KINDS)).order_by(CommerceAction.id))).first()
        if pending is not None and kind in MONEY_KINDS and (existing is None or existing.id != pending.id):
            raise Conflict("order_action_in_progress",
                           details={"action_id": pending.id, "abandoned": _abandoned(pending, hub)})
        if existing is not None and existing.plan is not None:
            # Running it again under the same key: the same plan, not the rules applied to an order that the
            # first run may already have changed at the source (which then answers that first run's result).
            plan = _load_plan(existing.plan)
        else:
            rules = await commerce_service.rules_of(session=session, tenant_id=tenant_id)
            plan = await planner(Order.model_validate(row.data), rules)
        amount = plan.get("amount")
        now = utcnow()
        if existing is None:
            action = CommerceAction(
                id=new_id("cact"), tenant_id=tenant_id, order_ref=row.id, kind=kind, idempotency_key=key,
                request_hash=request_hash, status="pending", request=json.loads(json.dumps(request, default=str)),
                amount=format(amount, "f") if amount is not None else None, currency=row.data.get("currency"),
                buyer_id=row.buyer_id, actor_id=actor.id if actor else None, created_at=now, claimed_at=now,
                plan=_dump_plan(plan))
            session.add(action)
        else:  # a retry after the order system was unreachable or the first run was abandoned: same key again
            action = existing
            action.status, action.error_code, action.claimed_at, action.finished_at = "pending", None, now, None
            action.amount = format(amount, "f") if amount is not None else None
        row.version += 1
        row.updated_at = now
        try:
            await uow.commit()
        except IntegrityError:
            raise Conflict("idempotency_in_progress") from None
        return action, plan
    finally:
        await uow.session.close()


async def _settle(runtime: Runtime, *, tenant_id: str, actor: Principal | None, action_id: str, connector: str,
                  outcome: ActionOutcome | None, error_code: str | None, ip: str | None) -> tuple[CommerceAction,
                                                                                                 CommerceOrder | None]:
    uow = runtime.unit_of_work()
    try:
        action = await uow.session.get(CommerceAction, action_id, with_for_update=True)
        if action is None:
            raise NotFound("order_action_not_found", details={"action_id": action_id})
        row = None
        if outcome is not None:
            row = (await do_record_snapshots(uow, tenant_id=tenant_id, connector=connector, orders=[outcome.order],
                                             force=True))[0]
            action.status, action.external_ref, action.error_code = "succeeded", outcome.external_ref, None
        else:
            action.status, action.error_code = "failed", error_code
        action.finished_at = utcnow()
        await uow.session.flush()
        result = action_result(action).model_dump(mode="json")
        uow.emit(ev.ORDER_ACTION_COMPLETED, tenant_id=tenant_id, data={"action": result})
        await audit_actions.do_record(
            uow, tenant_id=tenant_id, actor=actor, action=f"order.{action.kind}", target_type="order",
            target_id=action.order_ref, ip=ip,
            details={"action_id": action.id, "status": action.status, "amount": action.amount,
                     "currency": action.currency, "idempotency_key": action.idempotency_key,
                     "external_ref": action.external_ref, "error_code": action.error_code})
        await uow.commit()
        return action, row
    finally:
        await uow.session.close()


async def _settle_shielded(runtime: Runtime, **kwargs: Any) -> tuple[CommerceAction, CommerceOrder | None]:
    """``_settle`` that a cancellation of the caller (client gone, shutdown) cannot stop half-way."""
    return await hub_of(runtime).finish_anyway(_settle(runtime, **kwargs))


async def _execute(runtime: Runtime, *, tenant_id: str, view: OrderView, plan: Plan, key: str,
                   executor: Executor) -> tuple[ActionOutcome | None, str | None, DomainError | None]:
    """Call the order system: (outcome, error code, refusal)."""
    entry = await commerce_service.entry_for(runtime=runtime, tenant_id=tenant_id, connector=view.connector)
    if entry is None:
        return None, "order_system_unavailable", None
    # The source gets a key scoped to the tenant, so two tenants' keys never collide at a shared system.
    source_key = f"{tenant_id}:{key}"
    try:
        outcome = await hub_of(runtime).call(entry, lambda: executor(entry.source, view.order, plan, source_key))
    except SourceUnavailable:
        return None, "order_system_unavailable", None
    except DomainError as exc:
        return None, exc.code, exc
    return outcome, None, None


async def _run(runtime: Runtime, *, tenant_id: str, actor: Principal | None, order_ref: str, kind: str,
               request: dict[str, Any], idempotency_key: str | None, expected_version: int | None,
               planner: Planner, executor: Executor, ip: str | None) -> ActionResult:
    key = idempotency_key or new_id("idem")
    request_hash = _request_hash(kind, order_ref, request)
    hub = hub_of(runtime)
    async with runtime.sessionmaker() as session:
        existing = (await session.scalars(select(CommerceAction).where(
            CommerceAction.tenant_id == tenant_id, CommerceAction.idempotency_key == key))).first()
    if existing is not None:
        if existing.request_hash != request_hash:
            raise ValidationFailed("idempotency_key_reused")
        if existing.status == "pending" and not _abandoned(existing, hub):
            raise Conflict("idempotency_in_progress")
        if existing.status != "pending" and existing.error_code != "order_system_unavailable":
            view = await commerce_service.get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref)
            return action_result(existing, view)
        # Unreachable order system, or abandoned between claim and settle: run again under the same key (the
        # source de-duplicates). The first attempt already passed its If-Match and bumped the version.
        expected_version = None
    view = await commerce_service.get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref, max_age=0)
    if view.freshness.degraded:
        raise SourceDown(details={"age_seconds": view.freshness.age_seconds})
    claim = {"tenant_id": tenant_id, "actor": actor, "kind": kind, "key": key, "request_hash": request_hash,
             "request": request, "expected_version": expected_version, "planner": planner}
    try:
        action, plan = await _claim(runtime, view=view, **claim)
    except Conflict as exc:
        # Another money action of this order was abandoned: finish it first (under its own key), then go on.
        if exc.code != "order_action_in_progress" or not exc.details.get("abandoned"):
            raise
        await resume_action(runtime, exc.details["action_id"])
        view = await commerce_service.get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref, max_age=0)
        if view.freshness.degraded:
            raise SourceDown(details={"age_seconds": view.freshness.age_seconds}) from None
        action, plan = await _claim(runtime, view=view, **claim)
    settle = {"tenant_id": tenant_id, "actor": actor, "action_id": action.id, "connector": view.connector,
              "ip": ip}
    try:
        outcome, error_code, refusal = await _execute(runtime, tenant_id=tenant_id, view=view, plan=plan, key=key,
                                                      executor=executor)
    except BaseException:
        # Cancelled (client gone, shutdown) or broken between claim and settle: never leave the action pending;
        # it fails as retryable, and a retry with the same key runs it again under the same source key.
        try:
            await _settle_shielded(runtime, outcome=None, error_code="order_system_unavailable", **settle)
        except Exception:  # the database is gone too: the abandoned-action pass settles it later
            log.exception("could not settle interrupted order action %s", action.id)
        raise
    action, row = await _settle_shielded(runtime, outcome=outcome, error_code=error_code, **settle)
    if refusal is not None:
        raise refusal
    if row is None:  # the order system did not answer
        raise SourceDown(details={"action_id": action.id})
    cached = CachedOrder(row.id, row.connector, row.version, Order.model_validate(row.data), row.data_hash,
                         row.fetched_at.timestamp())
    hub.remember(tenant_id, cached)
    return action_result(action, commerce_service._view(cached, source="live"))


async def resume_action(runtime: Runtime, action_id: str) -> CommerceAction | None:
    """Run an abandoned pending action again under its own idempotency key (the order system answers the first
    run's result if it got that far). Returns the settled action, or None when it was not abandoned.

    If it cannot even be claimed again (the order system is down, the order changed), it is settled as a
    retryable ``order_system_unavailable`` failure, so it blocks the order no longer and a retry with its key
    still runs it again under the same source key.
    """
    hub = hub_of(runtime)
    async with runtime.sessionmaker() as session:
        action = await session.get(CommerceAction, action_id)
    if action is None or not _abandoned(action, hub):
        return None
    runner, model = _RESUMABLE[action.kind]
    try:
        await runner(runtime, tenant_id=action.tenant_id, actor=None, order_ref=action.order_ref,
                     data=model.model_validate(action.request), idempotency_key=action.idempotency_key)
    except DomainError as exc:
        log.info("abandoned order action %s ended with %s", action.id, exc.code)
    except PydanticValidationError:
        log.warning("abandoned order action %s has a request that no longer validates", action.id)
    async with runtime.sessionmaker() as session:
        after = await session.get(CommerceAction, action_id)
    if after is not None and _abandoned(after, hub):
        connector = (await commerce_service.get_order(runtime=runtime, tenant_id=after.tenant_id,
                                                      order_ref=after.order_ref)).connector
        after, _ = await _settle(runtime, tenant_id=after.tenant_id, actor=None, action_id=after.id,
                                 connector=connector, outcome=None, error_code="order_system_unavailable", ip=None)
    return after


async def resume_abandoned(runtime: Runtime, *, limit: int = 50) -> int:
    """Settle or re-run up to ``limit`` abandoned pending actions (the background pass); returns how many."""
    cutoff = utcnow() - timedelta(seconds=hub_of(runtime).abandoned_after)
    async with runtime.sessionmaker() as session:
        ids = (await session.scalars(select(CommerceAction.id).where(
            CommerceAction.status == "pending",
            or_(CommerceAction.claimed_at <= cutoff,
                and_(CommerceAction.claimed_at.is_(None), CommerceAction.created_at <= cutoff)))
            .order_by(CommerceAction.claimed_at, CommerceAction.id).limit(limit))).all()
    done = 0
    for action_id in ids:
        try:
            done += await resume_action(runtime, action_id) is not None
        except Exception:  # one broken action must not stop the others
            log.exception("could not resume order action %s", action_id)
    return done


async def do_cancel_order(runtime: Runtime, *, tenant_id: str, actor: Principal | None, order_ref: str,
                          data: CancelRequest, idempotency_key: str | None = None,
                          expected_version: int | None = None, ip: str | None = None) -> ActionResult:
    """Cancel an order that has not shipped; what was paid is refunded by the source."""

    async def plan(order: Order, rules: policies.CommerceRules) -> Plan:
        refusal = policies.can_change_before_shipping(order)
        if refusal:
            raise Conflict(refusal, details={"order_status": order.status})
        return {"amount": policies.refundable(order) if order.paid_at else None}

    async def execute(source: OrderSource, order: Order, p: Plan, key: str) -> ActionOutcome:
        return await source.cancel(order.order_id, reason=data.reason, idempotency_key=key)

    return await _run(runtime, tenant_id=tenant_id, actor=actor, order_ref=order_ref, kind="cancel",
                      request=data.model_dump(mode="json"), idempotency_key=idempotency_key,
                      expected_version=expected_version, planner=plan, executor=execute, ip=ip)


async def do_change_address(runtime: Runtime, *, tenant_id: str, actor: Principal | None, order_ref: str,
                            data: AddressChangeRequest, idempotency_key: str | None = None,
                            expected_version: int | None = None, ip: str | None = None) -> ActionResult:
    """Change the shipping address of an order that has not shipped (a risk flag remembers it)."""

    async def plan(order: Order, rules: policies.CommerceRules) -> Plan:
        refusal = policies.can_change_before_shipping(order)
        if refusal:
            raise Conflict(refusal, details={"order_status": order.status})
        return {}

    async def execute(source: OrderSource, order: Order, p: Plan, key: str) -> ActionOutcome:
        return await source.change_address(order.order_id, address=data.address, idempotency_key=key)

    return await _run(runtime, tenant_id=tenant_id, actor=actor, order_ref=order_ref, kind="change_address",
                      request=data.model_dump(mode="json"), idempotency_key=idempotency_key,
                      expected_version=expected_version, planner=plan, executor=execute, ip=ip)


async def do_create_return(runtime: Runtime, *, tenant_id: str, actor: Principal | None, order_ref: str,
                           data: ReturnCreate, idempotency_key: str | None = None,
                           expected_version: int | None = None, ip: str | None = None) -> ActionResult:
    """Open a return or exchange for lines the return rules allow (409 ``return_not_eligible`` with reasons)."""

    async def plan(order: Order, rules: policies.CommerceRules) -> Plan:
        now = utcnow()
        for line in data.lines:
            item = order.item(line.line_id)
            if item is None:
                raise ValidationFailed("unknown_order_line", details={"line_id": line.line_id})
            verdict = policies.return_eligibility(order, item, now, rules, kind=data.reason)
            if not verdict.eligible or line.quantity > verdict.returnable_quantity:
                raise Conflict("return_not_eligible", details={
                    "line_id": line.line_id, "returnable_quantity": verdict.returnable_quantity,
                    "reasons": [r.model_dump() for r in verdict.reasons]})
        return {}

    async def execute(source: OrderSource, order: Order, p: Plan, key: str) -> ActionOutcome:
        return await source.create_return(order.order_id, kind=data.kind, reason=data.reason, idempotency_key=key,
                                           lines=[ReturnLine(line_id=x.line_id, quantity=x.quantity)
                                                  for x in data.lines])

    return await _run(runtime, tenant_id=tenant_id, actor=actor, order_ref=order_ref, kind="create_return",
                      request=data.model_dump(mode="json"), idempotency_key=idempotency_key,
                      expected_version=expected_version, planner=plan, executor=execute, ip=ip)


async def do_request_refund(runtime: Runtime, *, tenant_id: str, actor: Principal | None, order_ref: str,
                            data: RefundCreate, idempotency_key: str | None = None,
                            expected_version: int | None = None, ip: str | None = None) -> ActionResult:
    """Refund lines by the refund rules; never more than what is left of what was paid."""

    async def plan(order: Order, rules: policies.CommerceRules) -> Plan:
        if data.currency and data.currency.upper() != order.currency:
            raise ValidationFailed("currency_mismatch", details={"order_currency": order.currency})
        quote = policies.refund_quote(order, data.lines, rules, reason_code=data.reason)
        amount, shipping = quote.total - quote.shipping, quote.shipping
        if data.amount is not None:
            if data.amount > quote.total:
                raise Conflict("refund_exceeds_paid", details={"quote": format(quote.total, "f")})
            shipping = min(shipping, data.amount)
            amount = data.amount - shipping
        return {"amount": amount + shipping, "items": amount, "shipping": shipping}

    async def execute(source: OrderSource, order: Order, p: Plan, key: str) -> ActionOutcome:
        return await source.request_refund(order.order_id, amount=p["items"], shipping=p["shipping"],
                                           reason=data.reason, idempotency_key=key,
                                           lines=[ReturnLine(line_id=x.line_id, quantity=x.quantity)
                                                  for x in data.lines])

    return await _run(runtime, tenant_id=tenant_id, actor=actor, order_ref=order_ref, kind="request_refund",
                      request=data.model_dump(mode="json"), idempotency_key=idempotency_key,
                      expected_version=expected_version, planner=plan, executor=execute, ip=ip)


async def do_claim_price_protection(runtime: Runtime, *, tenant_id: str, actor: Principal | None, order_ref: str,
                                    data: PriceProtectionClaim, idempotency_key: str | None = None,
                                    expected_version: int | None = None, ip: str | None = None) -> ActionResult:
    """价保: refund the difference to today's lower price, once per line, within the window."""
    view = await commerce_service.get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref)
    item = view.order.item(data.line_id)
    if item is None:
        raise ValidationFailed("unknown_order_line", details={"line_id": data.line_id})
    price = await commerce_service.current_price(runtime=runtime, tenant_id=tenant_id, connector=view.connector,
                                                 sku=item.sku)

    async def plan(order: Order, rules: policies.CommerceRules) -> Plan:
        line = order.item(data.line_id)
        if line is None:  # the order changed between the two reads
            raise ValidationFailed("unknown_order_line", details={"line_id": data.line_id})
        quote = policies.price_protection_quote(order, line, price, utcnow(), rules)
        if not quote.eligible:
            raise Conflict("price_protection_not_eligible",
                           details={"reasons": [r.model_dump() for r in quote.reasons]})
        return {"amount": quote.amount}

    async def execute(source: OrderSource, order: Order, p: Plan, key: str) -> ActionOutcome:
        return await source.claim_price_protection(order.order_id, line_id=data.line_id, amount=p["amount"],
                                                   idempotency_key=key)

    return await _run(runtime, tenant_id=tenant_id, actor=actor, order_ref=order_ref, kind="claim_price_protection",
                      request=data.model_dump(mode="json"), idempotency_key=idempotency_key,
                      expected_version=expected_version, planner=plan, executor=execute, ip=ip)


_RESUMABLE: dict[str, tuple[Callable[..., Awaitable[ActionResult]], type[BaseModel]]] = {
    "cancel": (do_cancel_order, CancelRequest), "change_address": (do_change_address, AddressChangeRequest),
    "create_return": (do_create_return, ReturnCreate), "request_refund": (do_request_refund, RefundCreate),
    "claim_price_protection": (do_claim_price_protection, PriceProtectionClaim)}


# --- connectors and rules -----------------------------------------------------------------------------------

async def do_create_connector(uow: UnitOfWork, *, tenant_id: str, data: ConnectorCreate,
                              actor: Principal | None, ip: str | None = None) -> CommerceConnector:
    """Register an order system; its webhook secret is generated here and shown to admins. Audited."""
    row = CommerceConnector(id=new_id("ccn"), tenant_id=tenant_id, name=data.name, kind=data.kind,
                            marketplace=data.marketplace if data.kind == "rest" else "demo_shop",
                            webhook_format=data.webhook_format, webhook_secret=secrets.token_urlsafe(32),
                            config=data.config, enabled=True, created_at=utcnow())
    uow.session.add(row)
    await uow.session.flush()
    await audit_actions.do_record(uow, tenant_id=tenant_id, actor=actor, action="commerce.connector_created",
                                  target_type="commerce_connector", target_id=row.id, ip=ip,
                                  details={"kind": row.kind, "marketplace": row.marketplace})
    return row


async def do_update_rules(uow: UnitOfWork, *, tenant_id: str, rules: policies.CommerceRules,
                          actor: Principal | None, expected_version: int | None = None,
                          ip: str | None = None) -> CommerceSettings:
    """Replace the tenant's after-sales rules (If-Match on the settings version). Audited."""
    row = await uow.session.get(CommerceSettings, tenant_id, with_for_update=True)
    if row is None:
        check_version(0, expected_version)
        row = CommerceSettings(tenant_id=tenant_id, rules={}, version=0, updated_at=utcnow())
        uow.session.add(row)
    else:
        check_version(row.version, expected_version)
    row.rules = rules.model_dump(mode="json")
    row.version += 1
    row.updated_at = utcnow()
    await uow.session.flush()
    await audit_actions.do_record(uow, tenant_id=tenant_id, actor=actor, action="commerce.rules_updated",
                                  target_type="commerce_settings", target_id=tenant_id, ip=ip,
                                  details={"version": row.version})
    return row


async def do_emit_stuck(uow: UnitOfWork, *, tenant_id: str, order_ref: str, order_id: str,
                        stuck: dict[str, Any]) -> None:
    """Announce a parcel stuck at a node, so the bot or an agent can reach out before the customer asks."""
    uow.emit(ev.SHIPMENT_STUCK, tenant_id=tenant_id, data={"order_ref": order_ref, "order_id": order_id, **stuck})


async def do_receive_webhook(uow: UnitOfWork, *, connector: CommerceConnector, event_id: str, type: str,
                             payload: dict[str, Any], order: Order) -> tuple[CommerceWebhookEvent, bool]:
    """Store a verified webhook and apply its order; returns (event, newly stored).

    Idempotent by event id (a redelivery answers like the first delivery and changes nothing); an event older
    than the stored order (by source version, else updated-at) is stored as ``stale`` and not applied.
    """
    existing = (await uow.session.scalars(select(CommerceWebhookEvent).where(
        CommerceWebhookEvent.connector_id == connector.id, CommerceWebhookEvent.event_id == event_id))).first()
    if existing is not None:
        return existing, False
    if order.marketplace != connector.marketplace and connector.kind == "rest":
        order = order.model_copy(update={"marketplace": connector.marketplace})
    ref = commerce_service.order_ref(connector.tenant_id, connector.id, order)
    # Locked (PostgreSQL) so the version we compare with cannot move before do_record_snapshots looks.
    before = await uow.session.get(CommerceOrder, ref, with_for_update=True, populate_existing=True)
    before_version = before.version if before is not None else None
    row = (await do_record_snapshots(uow, tenant_id=connector.tenant_id, connector=connector.id,
                                     orders=[order]))[0]
    stale = before_version is not None and row.version == before_version and row.data_hash != \
        commerce_service.data_hash(order)
    event = CommerceWebhookEvent(id=new_id("cwh"), tenant_id=connector.tenant_id, connector_id=connector.id,
                                 event_id=event_id, type=type, payload=payload,
                                 outcome="stale" if stale else "applied", order_ref=row.id, received_at=utcnow())
    try:
        async with uow.session.begin_nested():
            uow.session.add(event)
            await uow.session.flush()
    except IntegrityError:  # the same event delivered twice at once: the other delivery stored it
        raise Conflict("webhook_in_progress") from None
    return event, True
