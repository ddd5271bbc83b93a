"""Background work of the commerce domain: reconciliation with the sources, proactive stuck-parcel events.

``run(runtime)`` is registered in ``kefu.workers.WORKERS`` and started by every node's lifespan: every
``hub.pass_seconds`` it runs ``run_pass`` (stuck parcels, abandoned order actions, then reconciliation of every connector). Each
reconciliation handles a bounded batch per connector, so a large tenant cannot starve the loop, and the pass
catches its own errors (one bad connector or order never stops the loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from kefu.commerce import actions as commerce_actions
from kefu.commerce import policies
from kefu.commerce import service as commerce_service
from kefu.commerce.models import CommerceOrder
from kefu.commerce.ports import SourceUnavailable
from kefu.commerce.schemas import Order
from kefu.commerce.sources import hub_of
from kefu.core.clock import utcnow

if TYPE_CHECKING:
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.commerce.workers")
RECONCILE_BATCH = 200
OPEN_STATUSES = ("unpaid", "paid", "pre_sale", "shipped", "delivered", "partially_refunded")
IN_TRANSIT_STATUSES = ("shipped", "partially_refunded")


async def reconcile(runtime: Runtime, *, tenant_id: str, connector: str, limit: int = RECONCILE_BATCH,
                    older_than: timedelta = timedelta(0)) -> dict[str, int]:
    """Compare stored copies of open orders with the source and store the source's version where they drifted
    (a missed webhook is the usual cause). Returns counts.

    Orders not confirmed by the source for ``older_than`` are checked, a batch of ``limit`` per call, going
    round the connector's orders in id order (a per-node cursor), so a large shop is covered over several
    passes. A copy that matches is marked as confirmed now. A source answer older than the stored copy (by
    source version, else updated-at, e.g. a webhook already told us more) does not roll the copy back.
    """
    entry = await commerce_service.entry_for(runtime=runtime, tenant_id=tenant_id, connector=connector)
    counts = {"checked": 0, "repaired": 0, "missing": 0, "failed": 0}
    if entry is None:
        return counts
    hub = hub_of(runtime)
    cursor_key = (tenant_id, connector)
    after = hub.reconcile_cursor.get(cursor_key, "")
    query = select(CommerceOrder).where(
        CommerceOrder.tenant_id == tenant_id, CommerceOrder.connector == connector,
        CommerceOrder.status.in_(OPEN_STATUSES), CommerceOrder.fetched_at <= utcnow() - older_than)
    async with runtime.sessionmaker() as session:
        rows = list((await session.scalars(query.where(CommerceOrder.id > after).order_by(CommerceOrder.id)
                                           .limit(limit))).all())
        if len(rows) < limit and after:  # the end of the queue: go on from its start
            rows += (await session.scalars(query.where(CommerceOrder.id <= after).order_by(CommerceOrder.id)
                                           .limit(limit - len(rows)))).all()
    hub.reconcile_cursor[cursor_key] = rows[-1].id if len(rows) == limit else ""
    versions = {row.id: row.version for row in rows}
    answered: list[Order] = []
    drifted = 0
    for row in rows:
        counts["checked"] += 1
        try:
            order = await hub.call(entry, lambda row=row: entry.source.get_order(row.order_id))
        except SourceUnavailable:
            counts["failed"] += 1
            break  # the source is down: try again next pass
        if order is None:
            counts["missing"] += 1
            continue
        answered.append(order)
        drifted += commerce_service.data_hash(order) != row.data_hash
    if answered:
        uow = runtime.unit_of_work()
        try:
            # Matching copies only get their confirmation time; drifted ones are replaced (version + 1,
            # order.updated) unless the source's answer is older than what we hold.
            stored = await commerce_actions.do_record_snapshots(uow, tenant_id=tenant_id, connector=connector,
                                                                orders=answered)
            await uow.commit()
        finally:
            await uow.session.close()
        for row in stored:
            if row.version != versions.get(row.id, row.version):
                counts["repaired"] += 1
                commerce_service.forget_order(runtime=runtime, tenant_id=tenant_id, order_ref=row.id)
        if drifted > counts["repaired"]:
            log.info("reconciliation kept %d newer stored copies", drifted - counts["repaired"])
    return counts


async def scan_stuck(runtime: Runtime, *, tenant_id: str | None = None, batch: int = 500) -> int:
    """Emit ``shipment.stuck`` once per stuck parcel of the stored in-transit orders; returns how many.

    Goes through every stored order that can have a parcel on the way, in batches of ``batch`` (one
    transaction each), so no order is left out however many there are.
    """
    now = utcnow()
    emitted = 0
    after = ""
    rules_cache: dict[str, policies.CommerceRules] = {}
    while True:
        uow = runtime.unit_of_work()
        try:
            query = select(CommerceOrder).where(CommerceOrder.status.in_(IN_TRANSIT_STATUSES),
                                                CommerceOrder.id > after)
            if tenant_id is not None:
                query = query.where(CommerceOrder.tenant_id == tenant_id)
            rows = (await uow.session.scalars(query.order_by(CommerceOrder.id).limit(batch))).all()
            for row in rows:
                if row.tenant_id not in rules_cache:
                    rules_cache[row.tenant_id] = await commerce_service.rules_of(session=uow.session,
                                                                                 tenant_id=row.tenant_id)
                order = Order.model_validate(row.data)
                for shipment in order.shipments:
                    stuck = policies.stuck_shipment(shipment, now, rules_cache[row.tenant_id])
                    if stuck is None:
                        continue
                    alert = f"{stuck.tracking_number}@{stuck.since.isoformat()}"[:120]
                    if row.stuck_alert == alert:
                        continue
                    row.stuck_alert = alert
                    await commerce_actions.do_emit_stuck(uow, tenant_id=row.tenant_id, order_ref=row.id,
                                                         order_id=row.order_id, stuck=stuck.model_dump(mode="json"))
                    emitted += 1
            await uow.commit()
        finally:
            await uow.session.close()
        if len(rows) < batch:
            return emitted
        after = rows[-1].id


async def run_pass(runtime: Runtime) -> dict[str, int]:
    """One background pass: announce stuck parcels, settle or re-run abandoned pending order actions, then
    reconcile the open orders of every connector that the source has not confirmed for
    ``hub.reconcile_after`` seconds. Returns the summed counts."""
    hub = hub_of(runtime)
    totals = {"stuck": await scan_stuck(runtime), "checked": 0, "repaired": 0, "missing": 0, "failed": 0}
    try:
        # Order actions a crashed or redeployed node left pending: run them again under their keys.
        totals["resumed"] = await commerce_actions.resume_abandoned(runtime)
    except Exception:
        log.exception("resuming abandoned order actions failed")
        totals["resumed"] = 0
    async with runtime.sessionmaker() as session:
        pairs = (await session.execute(select(CommerceOrder.tenant_id, CommerceOrder.connector)
                                       .where(CommerceOrder.status.in_(OPEN_STATUSES)).distinct())).all()
    for tenant_id, connector in pairs:
        try:
            counts = await reconcile(runtime, tenant_id=tenant_id, connector=connector,
                                     older_than=timedelta(seconds=hub.reconcile_after))
        except Exception:  # one tenant's broken connector must not stop the others' reconciliation
            log.exception("reconciliation of %s failed", connector)
            continue
        for key, value in counts.items():
            totals[key] += value
    if totals["repaired"] or totals["stuck"] or totals["resumed"]:
        log.info("commerce pass: %s", totals)
    return totals


async def run(runtime: Runtime) -> None:
    """Every ``hub.pass_seconds`` (5 minutes by default): one ``run_pass``."""
    hub = hub_of(runtime)
    last = time.monotonic()
    while True:
        # Short ticks rather than one long sleep, so a changed interval takes effect at once.
        await asyncio.sleep(min(1.0, hub.pass_seconds))
        if time.monotonic() - last < hub.pass_seconds:
            continue
        last = time.monotonic()
        try:
            await run_pass(runtime)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("commerce background pass failed")
