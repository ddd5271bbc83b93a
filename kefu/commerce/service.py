"""Reads of the commerce domain: the stable API the bot, the agent UI and the REST layer call.

STABLE SERVICE API (keyword-only; ``runtime`` is ``kefu.runtime.Runtime``; models from ``kefu.commerce.schemas``)
-------------------------------------------------------------------------------------------------------------
    from kefu.commerce import service as commerce_service

    await commerce_service.find_orders(runtime=rt, tenant_id=t, order_number=None, phone=None, email=None,
                                       tracking_number=None, buyer_id=None, limit=20) -> OrderLookup
        Orders matching ANY of the given keys across every connector of the tenant, newest first.
        ``OrderLookup.orders`` is a list of ``OrderView``; ``OrderLookup.degraded`` is True when a source did
        not answer and (part of) the answer is the last known copy.
    await commerce_service.orders_of_contact(runtime=rt, tenant_id=t, contact_id=c, limit=20) -> OrderLookup
        A contact's orders across all marketplaces, found through the contact's identities (kind ``external``
        or ``marketplace_buyer`` = the shop's buyer id such as the demo shop's ``c1001``, ``email``, ``phone``).
    await commerce_service.get_order(runtime=rt, tenant_id=t, order_ref="ord_…") -> OrderView
        One order by Kefu's id; raises ``NotFound("order_not_found")`` (also for another tenant's id).
    await commerce_service.order_detail(runtime=rt, tenant_id=t, order_ref="ord_…", now=None) -> OrderDetail
        The order plus per-line return eligibility (zh/en reasons), risk flags, stuck shipments, refundable.
    await commerce_service.refund_quote(runtime=rt, tenant_id=t, order_ref=…, lines=[LineQuantity…],
                                        reason="no_reason") -> RefundQuote
    await commerce_service.price_protection_quote(runtime=rt, tenant_id=t, order_ref=…, line_id=…) -> PriceProtectionQuote
    commerce_service.extract_order_refs(text) -> {"order_numbers": [...], "tracking_numbers": [...]}
        Order numbers (demo shop ``DS100001``, or 12–20 digits) and tracking numbers (SF/ZTO/YT/JDL… + digits)
        found in free text (for the bot), to pass as ``order_number`` / ``tracking_number``.
    await commerce_service.current_price(runtime=rt, tenant_id=t, connector=view.connector, sku=…) -> Decimal | None

    OrderView = {id: "ord_…", connector, version (If-Match for actions), order: Order, freshness: Freshness}
    Order     = canonical order: order_id (marketplace number), marketplace, status, sale_type, currency,
                items[line_id, sku, title, category, quantity, unit_price, paid, refunded_*...], payments,
                promotions, shipments[carrier, tracking_number, status, events[at, node, status]], returns,
                refunds, buyer{buyer_id, name, phone, email}, shipping_address, total_paid, refunded_total.

Actions (state changes) are in ``kefu.commerce.actions`` (each takes a runtime, an actor and an idempotency key):
    do_cancel_order, do_change_address, do_create_return, do_request_refund, do_claim_price_protection
    -> ActionResult. See docs/subsystems/commerce.md.

Connector kinds (demo shop, REST) are registered by importing ``kefu.integrations.commerce`` — the app does
(through its router); scripts and tests that call this module without the app must import it themselves.

How reads work: a per-node read-through cache (fresh for ``fresh_seconds``, then served while revalidated in
the background up to ``stale_seconds``), a circuit breaker per connector, and the database copy of every
order seen (``commerce_orders``) as the last known data when the source is down: such answers carry
``freshness.degraded = True`` and their age.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import phonenumbers
from sqlalchemy import func, select

from kefu.commerce import policies
from kefu.commerce.models import CommerceConnector, CommerceOrder, CommerceOrderKey, CommerceSettings
from kefu.commerce.ports import SearchField, SourceUnavailable
from kefu.commerce.schemas import (
    Freshness,
    LineQuantity,
    Order,
    OrderDetail,
    OrderLookup,
    OrderSummary,
    OrderView,
    PriceProtectionQuote,
    RefundQuote,
)
from kefu.commerce.sources import DEMO, SOURCE_KINDS, CachedOrder, CircuitBreaker, SourceEntry, hub_of
from kefu.contacts import service as contact_service
from kefu.core.clock import utcnow
from kefu.core.errors import NotFound, ValidationFailed
from kefu.core.ids import ulid_text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kefu.runtime import Runtime

log = logging.getLogger("kefu.commerce")
CONNECTOR_TTL = 10.0
SEARCH_FIELDS: tuple[SearchField, ...] = ("order_id", "phone", "email", "tracking_number", "buyer_id")
_ORDER_NO = re.compile(r"\b(DS\d{6}|\d{12,20})\b")
_TRACKING = re.compile(r"\b((?:SF|ZTO|YT|JDL|JD|YD|STO|EMS)\d{9,15})\b", re.IGNORECASE)


# --- keys and ids -----------------------------------------------------------------------------------------

def normalise_key(field: str, value: str) -> str:
    """The form a lookup value is stored and searched in (emails lower-case, phones E.164 with CN default)."""
    value = value.strip()
    if field == "email":
        return value.lower()
    if field == "phone":
        try:
            parsed = phonenumbers.parse(value, "CN")
            if phonenumbers.is_possible_number(parsed):
                return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            pass
        return re.sub(r"[\s-]", "", value)
    if field == "tracking_number":
        return value.upper()
    return value


def order_keys(order: Order) -> set[tuple[str, str]]:
    """Every (field, value) an order can be found by."""
    keys = {("order_id", order.order_id)}
    for field, value in (("phone", order.buyer.phone), ("email", order.buyer.email), ("buyer_id", order.buyer.buyer_id),
                         ("phone", order.shipping_address.phone if order.shipping_address else None)):
        if value:
            keys.add((field, normalise_key(field, value)))
    keys |= {("tracking_number", normalise_key("tracking_number", t)) for t in order.tracking_numbers()}
    return {(k, v[:254]) for k, v in keys}


def order_ref(tenant_id: str, connector: str, order: Order) -> str:
    """Kefu's id of an order: time-ordered by the order's creation, stable for (tenant, connector, order id).

    Deterministic, so every node names an order alike without asking the database first, and lists sorted by
    id are sorted by order time.
    """
    ms = max(int(order.created_at.timestamp() * 1000), 0) & ((1 << 48) - 1)
    rand = hashlib.sha256(f"{tenant_id}\0{connector}\0{order.order_id}".encode()).digest()[:10]
    return "ord_" + ulid_text((ms << 80) | int.from_bytes(rand, "big"))


def data_hash(order: Order) -> str:
    return hashlib.sha256(json.dumps(order.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def extract_order_refs(text: str) -> dict[str, list[str]]:
    """Order numbers and tracking numbers mentioned in free text, e.g. for the bot."""
    return {"order_numbers": list(dict.fromkeys(m.upper() for m in _ORDER_NO.findall(text))),
            "tracking_numbers": list(dict.fromkeys(m.upper() for m in _TRACKING.findall(text)))}


# --- connectors -----------------------------------------------------------------------------------------

async def list_connectors(*, session: AsyncSession, tenant_id: str) -> list[CommerceConnector]:
    rows = await session.scalars(select(CommerceConnector).where(CommerceConnector.tenant_id == tenant_id)
                                 .order_by(CommerceConnector.id))
    return list(rows.all())


async def access_connector(*, session: AsyncSession, tenant_id: str, connector_id: str) -> CommerceConnector:
    row = await session.get(CommerceConnector, connector_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound("connector_not_found")
    return row


async def source_entries(*, runtime: Runtime, tenant_id: str) -> list[SourceEntry]:
    """The tenant's order systems (the demo shop when none is configured), cached briefly per node."""
    hub = hub_of(runtime)
    known = hub.connectors.get(tenant_id)
    if known is not None and time.monotonic() - known[1] < CONNECTOR_TTL:
        return known[0]
    async with runtime.sessionmaker() as session:
        rows = [r for r in await list_connectors(session=session, tenant_id=tenant_id) if r.enabled]
    specs = [(r.id, r.kind, r.marketplace, r.config) for r in rows] or [(DEMO, DEMO, "demo_shop", {})]
    entries = []
    for key, kind, marketplace, config in specs:
        entry = hub.sources.get((tenant_id, key))
        if entry is None:
            factory = SOURCE_KINDS.get(kind)
            if factory is None:
                log.warning("no connector kind %s installed", kind)
                continue
            try:
                source = factory(tenant_id, config)
            except Exception:  # a configuration that no longer works must not break the tenant's other sources
                log.exception("connector %s cannot be built", key)
                continue
            entry = SourceEntry(key, kind, marketplace, source,
                                CircuitBreaker(failures=hub.breaker_failures, cooldown=hub.breaker_cooldown))
            hub.sources[(tenant_id, key)] = entry
        entries.append(entry)
    hub.connectors[tenant_id] = (entries, time.monotonic())
    return entries


async def entry_for(*, runtime: Runtime, tenant_id: str, connector: str) -> SourceEntry | None:
    return next((e for e in await source_entries(runtime=runtime, tenant_id=tenant_id) if e.key == connector), None)


async def rules_of(*, session: AsyncSession, tenant_id: str) -> policies.CommerceRules:
    row = await session.get(CommerceSettings, tenant_id)
    return policies.CommerceRules.model_validate(row.rules) if row else policies.DEFAULT_RULES


# --- the read-through path ------------------------------------------------------------------------------

def _view(cached: CachedOrder, *, source: str, degraded: bool = False) -> OrderView:
    age = max(time.time() - cached.fetched_at, 0.0)
    return OrderView(id=cached.ref, connector=cached.connector, version=cached.version, order=cached.order,
                     freshness=Freshness(source=source, degraded=degraded, age_seconds=round(age, 3),
                                         fetched_at=datetime.fromtimestamp(cached.fetched_at, UTC)))


def _from_row(row: CommerceOrder) -> CachedOrder:
    return CachedOrder(row.id, row.connector, row.version, Order.model_validate(row.data), row.data_hash,
                       row.fetched_at.timestamp())


async def _store(runtime: Runtime, tenant_id: str, entry: SourceEntry, orders: list[Order]) -> list[CachedOrder]:
    """Remember orders fetched from a source: in memory always, in the database when they changed."""
    from kefu.commerce import actions as commerce_actions  # writes live in actions; this is the cache fill

    hub = hub_of(runtime)
    now = time.time()
    out: list[CachedOrder] = []
    changed: list[Order] = []
    for order in orders:
        ref = order_ref(tenant_id, entry.key, order)
        digest = data_hash(order)
        known = hub.cached(tenant_id, ref)
        if known is not None and known.data_hash == digest:
            known.fetched_at = now
            out.append(known)
        else:
            changed.append(order)
            out.append(CachedOrder(ref, entry.key, 0, order, digest, now))
    if changed:
        uow = runtime.unit_of_work()
        try:
            rows = await commerce_actions.do_record_snapshots(uow, tenant_id=tenant_id, connector=entry.key,
                                                              orders=changed)
            await uow.commit()
        finally:
            await uow.session.close()
        by_ref = {r.id: r for r in rows}
        for i, cached in enumerate(out):
            row = by_ref.get(cached.ref)
            if row is not None and cached.version == 0:
                out[i] = CachedOrder(row.id, row.connector, row.version, Order.model_validate(row.data),
                                     row.data_hash, now)
    for cached in out:
        hub.remember(tenant_id, cached)
    return out


def forget_order(*, runtime: Runtime, tenant_id: str, order_ref: str) -> None:
    """Drop this node's cached copy (after a webhook changed the stored one) and the tenant's cached searches."""
    hub = hub_of(runtime)
    hub.orders.pop((tenant_id, order_ref), None)
    for key in [k for k in hub.keys if k[0] == tenant_id]:
        hub.keys.pop(key, None)


async def _refresh(runtime: Runtime, tenant_id: str, cached: CachedOrder) -> CachedOrder | None:
    """Fetch one order from its source now; None when the source is unavailable."""
    entry = await entry_for(runtime=runtime, tenant_id=tenant_id, connector=cached.connector)
    if entry is None:
        return None
    hub = hub_of(runtime)
    try:
        order = await hub.call(entry, lambda: entry.source.get_order(cached.order.order_id))
    except SourceUnavailable:
        return None
    if order is None:
        return None
    return (await _store(runtime, tenant_id, entry, [order]))[0]


async def _refresh_in_background(runtime: Runtime, tenant_id: str, cached: CachedOrder) -> None:
    hub = hub_of(runtime)
    key = (tenant_id, cached.ref)
    if key in hub.refreshing:
        return
    hub.refreshing.add(key)
    try:
        await _refresh(runtime, tenant_id, cached)
    except Exception:
        log.exception("background order refresh failed")
    finally:
        hub.refreshing.discard(key)


async def _load_row(runtime: Runtime, tenant_id: str, ref: str) -> CachedOrder | None:
    async with runtime.sessionmaker() as session:
        row = await session.get(CommerceOrder, ref)
        return _from_row(row) if row is not None and row.tenant_id == tenant_id else None


async def get_order(*, runtime: Runtime, tenant_id: str, order_ref: str, max_age: float | None = None) -> OrderView:
    """One order by Kefu's id: from cache while fresh, revalidated in the background while stale, from the
    source otherwise, and the last known copy (``freshness.degraded``) when the source does not answer.

    ``max_age=0`` forces a trip to the source (actions use it to decide on current data).
    """
    hub = hub_of(runtime)
    fresh = hub.fresh_seconds if max_age is None else max_age
    cached = hub.cached(tenant_id, order_ref)
    if cached is not None:
        age = time.time() - cached.fetched_at
        if age < fresh:
            return _view(cached, source="cache")
        if max_age is None and age < hub.stale_seconds:
            hub.spawn(_refresh_in_background(runtime, tenant_id, cached))
            return _view(cached, source="cache")
    if cached is None:
        cached = await _load_row(runtime, tenant_id, order_ref)
        if cached is None:
            raise NotFound("order_not_found")
    live = await _refresh(runtime, tenant_id, cached)
    if live is not None:
        return _view(live, source="live")
    hub.remember(tenant_id, cached)
    return _view(cached, source="stale_cache", degraded=True)


async def _search_entry(runtime: Runtime, tenant_id: str, entry: SourceEntry, field: str, value: str,
                        limit: int) -> tuple[list[CachedOrder], bool]:
    """One key in one source: (orders, degraded)."""
    hub = hub_of(runtime)
    cache_key = (tenant_id, entry.key, field, value)
    known = hub.keys.get(cache_key)
    now = time.time()
    if known is not None and now - known[1] < hub.fresh_seconds:
        refs, _ = known
        found = [hub.cached(tenant_id, r) for r in refs]
        if all(found):
            return found, False  # type: ignore[return-value]
    try:
        orders = await hub.call(entry, lambda: entry.source.search(field, value, limit=limit))  # type: ignore[arg-type]
    except SourceUnavailable:
        # Degraded: what this node last saw for the key (as fast as a cache hit), else the stored copies.
        if known is not None:
            found = [hub.cached(tenant_id, r) for r in known[0]]
            if all(found):
                return found, True  # type: ignore[return-value]
        return await _search_stored(runtime, tenant_id, entry.key, field, value, limit), True
    stored = await _store(runtime, tenant_id, entry, orders)
    # Orders only webhooks told us about (or that the source no longer lists under this key) still count.
    seen = {c.ref for c in stored}
    stored += [c for c in await _search_stored(runtime, tenant_id, entry.key, field, value, limit) if c.ref not in seen]
    hub.keys[cache_key] = ([c.ref for c in stored], now)
    return stored, False


async def _search_stored(runtime: Runtime, tenant_id: str, connector: str, field: str, value: str,
                         limit: int) -> list[CachedOrder]:
    """Degraded search: the orders last seen with this key, newest copy per order (memory, else database)."""
    hub = hub_of(runtime)
    async with runtime.sessionmaker() as session:
        rows = (await session.scalars(
            select(CommerceOrder).join(CommerceOrderKey, CommerceOrderKey.order_ref == CommerceOrder.id)
            .where(CommerceOrderKey.tenant_id == tenant_id, CommerceOrderKey.kind == field,
                   CommerceOrderKey.value == value, CommerceOrder.connector == connector)
            .order_by(CommerceOrder.id.desc()).limit(limit))).all()
    out = []
    for row in rows:
        cached = hub.cached(tenant_id, row.id)
        if cached is None or cached.version < row.version:
            cached = _from_row(row)
            hub.remember(tenant_id, cached)
        out.append(cached)
    return out


async def lookup(*, runtime: Runtime, tenant_id: str, keys: list[tuple[str, str]], limit: int = 20) -> OrderLookup:
    """Orders matching any (field, value) across the tenant's sources, newest first, without duplicates."""
    found: dict[str, tuple[CachedOrder, bool]] = {}
    degraded = False
    wanted = list(dict.fromkeys((f, normalise_key(f, v)) for f, v in keys if v and v.strip()))
    for field, _ in wanted:
        if field not in SEARCH_FIELDS:
            raise ValidationFailed("unknown_lookup_field", details={"field": field})
    for entry in await source_entries(runtime=runtime, tenant_id=tenant_id):
        for field, value in wanted:
            orders, stale = await _search_entry(runtime, tenant_id, entry, field, value, limit)
            degraded = degraded or stale
            for cached in orders:
                if cached.ref not in found or (found[cached.ref][1] and not stale):
                    found[cached.ref] = (cached, stale)
    views = [_view(c, source="stale_cache" if stale else "cache", degraded=stale) for c, stale in found.values()]
    views.sort(key=lambda v: (v.order.created_at, v.id), reverse=True)
    return OrderLookup(orders=views[:limit], degraded=degraded)


async def find_orders(*, runtime: Runtime, tenant_id: str, order_number: str | None = None, phone: str | None = None,
                      email: str | None = None, tracking_number: str | None = None, buyer_id: str | None = None,
                      limit: int = 20) -> OrderLookup:
    """Orders matching any of the given keys (see the module docstring)."""
    keys = [(f, v) for f, v in (("order_id", order_number), ("phone", phone), ("email", email),
                                ("tracking_number", tracking_number), ("buyer_id", buyer_id)) if v]
    if not keys:
        raise ValidationFailed("lookup_key_required")
    return await lookup(runtime=runtime, tenant_id=tenant_id, keys=keys, limit=limit)


async def contact_keys(*, session: AsyncSession, tenant_id: str, contact_id: str) -> list[tuple[str, str]]:
    """The lookup keys of a contact: buyer ids (external / marketplace identities), emails and phones."""
    return [(field, value) for field, value, _ in await _contact_keys(session=session, tenant_id=tenant_id,
                                                                       contact_id=contact_id)]


async def _contact_keys(*, session: AsyncSession, tenant_id: str,
                        contact_id: str) -> list[tuple[str, str, str | None]]:
    """(field, value, marketplace or None): a ``marketplace_buyer`` identity written ``<marketplace>:<id>``
    names the buyer id on that marketplace only (buyer ids are not unique across marketplaces)."""
    contact = await contact_service.access_contact(session=session, tenant_id=tenant_id, contact_id=contact_id)
    identities = (await contact_service.identities_of(session=session, contact_ids=[contact.id])).get(contact.id, [])
    keys: list[tuple[str, str, str | None]] = []
    for ident in identities:
        if ident.kind == "marketplace_buyer":
            marketplace, sep, buyer = ident.value.partition(":")
            keys.append(("buyer_id", buyer, marketplace) if sep and buyer else ("buyer_id", ident.value, None))
        elif ident.kind == "external":
            keys.append(("buyer_id", ident.value, None))
        elif ident.kind in ("email", "phone"):
            keys.append((ident.kind, ident.value, None))
    keys += [(k, v, None) for k, v in (("email", contact.email), ("phone", contact.phone)) if v]
    return keys


async def orders_of_contact(*, runtime: Runtime, tenant_id: str, contact_id: str, limit: int = 20) -> OrderLookup:
    """A contact's orders across every marketplace (NotFound ``contact_not_found`` for unknown contacts)."""
    async with runtime.sessionmaker() as session:
        keys = await _contact_keys(session=session, tenant_id=tenant_id, contact_id=contact_id)
    if not keys:
        return OrderLookup(orders=[])
    found = await lookup(runtime=runtime, tenant_id=tenant_id, keys=[(f, v) for f, v, _ in keys], limit=limit)
    qualified = [(normalise_key(f, v), m) for f, v, m in keys if m is not None]
    if not qualified:
        return found
    anywhere = {(f, normalise_key(f, v)) for f, v, m in keys if m is None}

    def theirs(view: OrderView) -> bool:
        """Found through a key that really is this contact's (a buyer id counts on its own marketplace)."""
        order = view.order
        return bool(order_keys(order) & anywhere) or any(
            order.buyer.buyer_id == buyer and order.marketplace == marketplace for buyer, marketplace in qualified)

    return OrderLookup(orders=[v for v in found.orders if theirs(v)], degraded=found.degraded)


def summary(view: OrderView) -> OrderSummary:
    o = view.order
    return OrderSummary(id=view.id, order_id=o.order_id, marketplace=o.marketplace, status=o.status,
                        currency=o.currency, total_paid=o.total_paid, created_at=o.created_at,
                        item_titles=[i.title for i in o.items], tracking_numbers=o.tracking_numbers())


async def buyer_refund_count(*, session: AsyncSession, tenant_id: str, buyer_id: str | None) -> int:
    """How many of this buyer's known orders were refunded or returned (a risk signal)."""
    if not buyer_id:
        return 0
    return int(await session.scalar(
        select(func.count()).select_from(CommerceOrder).where(
            CommerceOrder.tenant_id == tenant_id, CommerceOrder.buyer_id == buyer_id,
            CommerceOrder.status.in_(("partially_refunded", "refunded", "returned")))) or 0)


async def order_detail(*, runtime: Runtime, tenant_id: str, order_ref: str, now: datetime | None = None) -> OrderDetail:
    """The order with its return eligibility per line, risk flags, stuck parcels and what is refundable."""
    view = await get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref)
    now = now or utcnow()
    async with runtime.sessionmaker() as session:
        rules = await rules_of(session=session, tenant_id=tenant_id)
        refunds = await buyer_refund_count(session=session, tenant_id=tenant_id, buyer_id=view.order.buyer.buyer_id)
    order = view.order
    returns = [policies.return_eligibility(order, item, now, rules, kind=kind)
               for item in order.items for kind in ("no_reason", "defect")]
    stuck = [s for s in (policies.stuck_shipment(sh, now, rules) for sh in order.shipments) if s]
    return OrderDetail(view=view, returns=returns, risk=policies.risk_flags(order, buyer_refund_count=refunds, rules=rules),
                       stuck=stuck, refundable=policies.refundable(order))


async def refund_quote(*, runtime: Runtime, tenant_id: str, order_ref: str, lines: list[LineQuantity],
                       reason: str = "no_reason") -> RefundQuote:
    view = await get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref)
    async with runtime.sessionmaker() as session:
        rules = await rules_of(session=session, tenant_id=tenant_id)
    return policies.refund_quote(view.order, lines, rules, reason_code=reason)


async def current_price(*, runtime: Runtime, tenant_id: str, connector: str, sku: str) -> Decimal | None:
    entry = await entry_for(runtime=runtime, tenant_id=tenant_id, connector=connector)
    if entry is None:
        return None
    try:
        return await hub_of(runtime).call(entry, lambda: entry.source.current_price(sku))
    except SourceUnavailable:
        return None


async def price_protection_quote(*, runtime: Runtime, tenant_id: str, order_ref: str, line_id: str,
                                 now: datetime | None = None) -> PriceProtectionQuote:
    view = await get_order(runtime=runtime, tenant_id=tenant_id, order_ref=order_ref)
    item = view.order.item(line_id)
    if item is None:
        raise ValidationFailed("unknown_order_line", details={"line_id": line_id})
    async with runtime.sessionmaker() as session:
        rules = await rules_of(session=session, tenant_id=tenant_id)
    price = await current_price(runtime=runtime, tenant_id=tenant_id, connector=view.connector, sku=item.sku)
    return policies.price_protection_quote(view.order, item, price, now or utcnow(), rules)
