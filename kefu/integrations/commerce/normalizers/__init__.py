"""Marketplace payloads → canonical ``Order``, from each provider's public documentation.

``normalize(format, payload)`` is the one entry point (the CLI, webhooks and tests use it). Every normaliser
keeps the canonical invariants: money as ``Decimal`` in one currency, nothing negative, and line ``paid``
amounts plus the shipping fee equal to ``total_paid`` (taxes or adjustments the payload does not attribute
to lines are prorated across them by paid amount).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from kefu.commerce.policies import allocate, cents
from kefu.commerce.schemas import Order
from kefu.core.errors import ValidationFailed

FORMATS = ("shopify", "woocommerce", "taobao", "canonical")


def invalid(reason: str, **details: Any) -> ValidationFailed:
    return ValidationFailed("invalid_order_payload", details={"reason": reason, **details})


def need(payload: dict[str, Any], key: str, where: str = "") -> Any:
    if not isinstance(payload, dict) or payload.get(key) in (None, ""):
        raise invalid("missing_field", field=f"{where}{key}")
    return payload[key]


def money(value: Any, field: str, *, currency: str | None = None, allow_negative: bool = False) -> Decimal:
    """An amount from a payload, rounded to the currency's minor unit (JPY 0, KWD / BHD 3, else 2 decimals).

    JSON is parsed with ``parse_float=Decimal`` wherever money comes in, so a number arrives exact; a float
    (a payload built in Python) goes through its shortest repr, never its binary expansion.
    """
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool):
        raise invalid("not_a_number", field=field)
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise invalid("not_a_number", field=field) from None
    if not amount.is_finite():
        raise invalid("not_a_number", field=field)
    if amount < 0 and not allow_negative:
        raise invalid("negative_amount", field=field)
    try:
        return cents(amount, currency)
    except InvalidOperation:  # more digits than any order system means
        raise invalid("amount_out_of_range", field=field) from None


def quantity(value: Any, field: str) -> int:
    try:
        qty = int(value)
    except (TypeError, ValueError):
        raise invalid("not_a_number", field=field) from None
    if qty <= 0 or str(qty) != str(value).strip().split(".")[0]:
        raise invalid("invalid_quantity", field=field)
    return qty


def timestamp(value: Any, field: str, *, tz: timezone = UTC) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise invalid("invalid_datetime", field=field) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)


CHINA = timezone(timedelta(hours=8))


def fit_lines(paid: list[Decimal], shipping: Decimal, total: Decimal, currency: str | None = None) -> list[Decimal]:
    """Make line amounts add up to ``total - shipping``, prorating any unattributed difference by paid amount."""
    target = total - shipping
    if target < 0:
        raise invalid("totals_do_not_add_up")
    if sum(paid, Decimal("0")) == target:
        return paid
    return allocate(target, paid if any(paid) else [Decimal("1")] * len(paid), currency)


def finish(data: dict[str, Any]) -> Order:
    """Validate the canonical dict; a model error becomes ``invalid_order_payload``."""
    try:
        order = Order.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise invalid("invalid_field", field=".".join(str(p) for p in first.get("loc", ())),
                      type=first.get("type")) from None
    problems = order.check_consistency()
    if problems:
        raise invalid("inconsistent_order", problems=problems)
    return order


def normalizer(fmt: str) -> Callable[[dict[str, Any]], Order]:
    from kefu.integrations.commerce.normalizers import shopify, taobao, woocommerce

    table: dict[str, Callable[[dict[str, Any]], Order]] = {
        "shopify": shopify.normalize, "woocommerce": woocommerce.normalize, "taobao": taobao.normalize,
        "canonical": finish}
    if fmt not in table:
        raise ValidationFailed("unknown_format", details={"format": fmt, "known": list(FORMATS)})
    return table[fmt]


def normalize(fmt: str, payload: Any) -> Order:
    """The canonical order for a provider payload; unwraps ``{"order": …}`` / ``{"trade": …}`` envelopes."""
    fn = normalizer(fmt)
    if not isinstance(payload, dict):
        raise invalid("not_an_object")
    for envelope in ("order", "trade", "trade_fullinfo_get_response"):
        inner = payload.get(envelope)
        if isinstance(inner, dict) and len(payload) == 1:
            return normalize(fmt, inner) if envelope == "trade_fullinfo_get_response" else fn(inner)
    return fn(payload)


def core_json(order: Order) -> dict[str, Any]:
    """The stable core keys tools rely on (``kefu commerce normalize``), money as decimal strings."""
    return {
        "order_id": order.order_id, "marketplace": order.marketplace, "status": order.status,
        "currency": order.currency, "total_paid": format(order.total_paid, "f"),
        "items": [{"sku": i.sku, "title": i.title, "quantity": i.quantity, "unit_price": format(i.unit_price, "f"),
                   "paid": format(i.paid, "f")} for i in order.items],
        "shipments": [{"carrier": s.carrier, "tracking_number": s.tracking_number} for s in order.shipments],
    }
