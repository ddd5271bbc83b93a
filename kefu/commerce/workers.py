"""Background work of the commerce domain: reconciliation with the sources, proactive stuck-parcel events.

``run(runtime)`` is registered in ``kefu.workers.WORKERS``. Each pass handles a bounded batch, so a large
tenant cannot starve the loop, and catches its own errors (one bad order never stops the loop).
"""

from __future__ import annotations

import asyncio
import logging
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
PASS_SECONDS = 300.0
RECONCILE_BATCH = 200
OPEN_STATUSES = ("unpaid", "paid", "pre_sale", "shipped", "delivered", "partially_refunded")


async def reconcile(runtime: Runtime, *, tenant_id: str, connector: str, limit: int = RECONCILE_BATCH,
                    older_than: timedelta = timedelta(0)) -> dict[str, int]:
    """Compare stored copies of open orders with the source and store the source's version where they drifted
    (the source is the truth; a missed webhook is the usual cause). Returns counts."""
    entry = await commerce_service.entry_for(runtime=runtime, tenant_id=tenant_id, connector=connector)
    counts = {"checked": 0, "repaired": 0, "missing": 0, "failed": 0}
    if entry is None:
        return counts
    cutoff = utcnow() - older_than
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(
            select(CommerceOrder).where(CommerceOrder.tenant_id == tenant_id, CommerceOrder.connector == connector,
                                        CommerceOrder.status.in_(OPEN_STATUSES), CommerceOrder.fetched_at <= cutoff)
            .order_by(CommerceOrder.fetched_at).limit(limit))).all()
    hub = hub_of(runtime)
    drifted: list[Order] = []
    for row in rows:
        counts["checked"] += 1
        try:
            order = await hub.call(entry, lambda row=row: entry.source.get_order(row.order_id))
        except SourceUnavailable:
            counts["failed"] += 1
            break  # the source is down: try again next pass
        if order is None:
            counts["missing"] += 1
        elif commerce_service.data_hash(order) != row.data_hash:
            drifted.append(order)
    if drifted:
        uow = runtime.unit_of_work()
        try:
            stored = await commerce_actions.do_record_snapshots(uow, tenant_id=tenant_id, connector=connector,
                                                                orders=drifted, force=True)
            await uow.commit()
        finally:
            await uow.session.close()
        for row in stored:
            commerce_service.forget_order(runtime=runtime, tenant_id=tenant_id, order_ref=row.id)
        counts["repaired"] = len(drifted)
    return counts


async def scan_stuck(runtime: Runtime, *, tenant_id: str | None = None, limit: int = 1000) -> int:
    """Emit ``shipment.stuck`` once per stuck parcel of the stored in-transit orders; returns how many."""
    now = utcnow()
    uow = runtime.unit_of_work()
    emitted = 0
    try:
        query = select(CommerceOrder).where(CommerceOrder.status == "shipped")
        if tenant_id is not None:
            query = query.where(CommerceOrder.tenant_id == tenant_id)
        rows = (await uow.session.scalars(query.order_by(CommerceOrder.id).limit(limit))).all()
        rules_cache: dict[str, policies.CommerceRules] = {}
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
    return emitted


async def run(runtime: Runtime) -> None:
    """Every few minutes: announce stuck parcels, reconcile open orders not confirmed for ten minutes."""
    while True:
        await asyncio.sleep(PASS_SECONDS)
        try:
            await scan_stuck(runtime)
            async with runtime.sessionmaker() as session:
                pairs = (await session.execute(select(CommerceOrder.tenant_id, CommerceOrder.connector).distinct()))
                pairs = pairs.all()
            for tenant_id, connector in pairs:
                await reconcile(runtime, tenant_id=tenant_id, connector=connector, older_than=timedelta(minutes=10))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("commerce background pass failed")
