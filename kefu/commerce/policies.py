"""Pure after-sales rules: return eligibility, refund quotes, price protection, risk flags, stuck parcels.

No I/O here: every function takes the order, the time and the tenant's ``CommerceRules`` and answers, so the
rules are tested exhaustively (hypothesis) and the bot, the agent UI and the actions all decide alike.
Reasons come in Chinese and English (``LocalisedReason``) from the ``commerce.*`` i18n keys.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

import phonenumbers
from pydantic import BaseModel, Field

from kefu.commerce.schemas import (
    LineQuantity,
    LocalisedReason,
    Order,
    OrderItem,
    PriceProtectionQuote,
    RefundQuote,
    RefundQuoteLine,
    ReturnEligibility,
    RiskFlag,
    Shipment,
    StuckShipment,
)
from kefu.core.errors import Conflict, ValidationFailed
from kefu.core.i18n import name_of, translate

CENT = Decimal("0.01")
ZERO = Decimal("0")
# ISO 4217 minor units that are not 2 (yen has no sen on a bill; dinars have fils in thousandths).
MINOR_UNITS = {**dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                                "VND", "VUV", "XAF", "XOF", "XPF"), 0),
               **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3)}


class CommerceRules(BaseModel):
    """A tenant's after-sales rules; every field has the usual Chinese e-commerce default."""

    no_reason_return_days: int = Field(default=7, ge=0, le=365)
    defect_return_days: int = Field(default=15, ge=0, le=365)
    # Per category overrides of the no-reason window (e.g. large appliances: 15).
    category_return_days: dict[str, Annotated[int, Field(ge=0, le=365)]] = Field(
        default_factory=lambda: {"large_appliances": 15})
    excluded_categories: list[str] = Field(default_factory=lambda: ["fresh_food", "customised"])
    refund_shipping: Literal["never", "on_full_refund", "defect_or_full"] = "defect_or_full"
    price_protection_days: int = Field(default=30, ge=0, le=365)
    high_value: Decimal = Field(default=Decimal("5000"), ge=0, max_digits=14, decimal_places=2)
    many_refunds: int = Field(default=3, ge=1, le=1_000_000)
    fraud_score_warning: float = Field(default=0.7, ge=0, le=1)
    stuck_hours: int = Field(default=48, ge=1, le=24 * 365)  # at one tracking node, unless the carrier says otherwise


DEFAULT_RULES = CommerceRules()


def reason(code: str, *, localised: Callable[[str], dict[str, Any]] | None = None, **params: Any) -> LocalisedReason:
    """The reason in both languages; ``localised(lang)`` gives the parameters that are words of that language."""
    key = f"commerce.reason.{code}"

    def text(lang: str) -> str:
        return translate(key, lang, **params, **(localised(lang) if localised else {}))

    return LocalisedReason(code=code, zh=text("zh"), en=text("en"))


def category_name(code: str, lang: str) -> str:
    """A product category as customers read it ("生鲜" / "fresh food"); a shop's own code, words spaced."""
    return name_of("commerce.category", code, lang, code.replace("_", " "))


def minor_unit(currency: str | None) -> Decimal:
    """The smallest amount of ``currency``: 1 for JPY, 0.001 for KWD / BHD, 0.01 otherwise (and when unknown)."""
    return Decimal(1).scaleb(-MINOR_UNITS.get((currency or "").upper(), 2))


def cents(value: Decimal, currency: str | None = None) -> Decimal:
    """``value`` rounded (half up) to the currency's minor unit (two decimals when no currency is given)."""
    return value.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def allocate(amount: Decimal, weights: list[Decimal], currency: str | None = None) -> list[Decimal]:
    """Split ``amount`` across ``weights`` in proportion, exactly: the shares always sum to ``amount``.

    Largest remainder: everyone gets the rounded-down share, the leftover minor units (cents, yen, fils) go to
    the largest fractions (ties to the earlier line), so no cent is created or lost.
    """
    unit = minor_unit(currency)
    amount = cents(amount, currency)
    total = sum(weights, ZERO)
    if not weights:
        return []
    if total <= 0:
        shares = [ZERO] * len(weights)
        shares[-1] = amount
        return shares
    raw = [amount * w / total for w in weights]
    shares = [r.quantize(unit, rounding=ROUND_DOWN) for r in raw]
    left = int((amount - sum(shares, ZERO)) / unit)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += unit
    return shares


def build_item_paid(items: list[tuple[Decimal, int, Decimal]], order_discount: Decimal,
                    currency: str | None = None) -> list[Decimal]:
    """What each line paid: (unit price × quantity − item discount) minus its share of order-level discounts.

    Order-level discounts (coupons, spend-X-save-Y) are prorated by each line's amount after item discounts.
    """
    nets = [cents(price * qty - discount, currency) for price, qty, discount in items]
    shares = allocate(min(order_discount, sum(nets, ZERO)), nets, currency)
    return [net - share for net, share in zip(nets, shares, strict=True)]


# --- returns ------------------------------------------------------------------------------------------

def _received_at(order: Order) -> datetime | None:
    delivered = [s.delivered_at for s in order.shipments if s.delivered_at]
    return max(delivered) if delivered else None


def return_eligibility(order: Order, item: OrderItem, now: datetime, rules: CommerceRules = DEFAULT_RULES, *,
                       kind: Literal["no_reason", "defect"] = "no_reason") -> ReturnEligibility:
    """Whether this line can be returned (or exchanged) now, and why (zh/en).

    The window starts at delivery (at payment if the order was never shipped, e.g. a pre-sale deposit);
    no-reason returns exclude fresh food, customised goods and opened hygiene goods; defects are always
    returnable within the longer defect window.
    """
    reasons = []
    returnable = item.quantity - max(item.returned_quantity, item.refunded_quantity)
    deadline = None
    if order.status in ("unpaid", "cancelled"):
        reasons.append(reason("order_not_paid"))
    elif order.status in ("paid", "pre_sale"):
        reasons.append(reason("not_shipped_cancel_instead"))
    elif order.status == "shipped" and _received_at(order) is None:
        reasons.append(reason("not_delivered_yet"))
    if returnable <= 0:
        reasons.append(reason("already_returned"))
    if kind == "no_reason":
        if item.category in rules.excluded_categories or item.customised:
            cat = "customised" if item.customised else item.category
            reasons.append(reason(f"excluded_{cat}" if cat in ("fresh_food", "customised") else "excluded_category",
                                  localised=lambda lang: {"category": category_name(cat, lang)}))
        if item.hygiene and item.opened:
            reasons.append(reason("opened_hygiene"))
    start = _received_at(order) or order.paid_at
    if start is not None:
        days = rules.defect_return_days if kind == "defect" else rules.category_return_days.get(
            item.category, rules.no_reason_return_days)
        deadline = start + timedelta(days=days)
        if now > deadline:
            reasons.append(reason("window_passed", days=days))
    eligible = not reasons
    if eligible:
        reasons.append(reason("eligible_defect" if kind == "defect" else "eligible_no_reason",
                              days=(deadline - start).days if deadline and start else 0))
    return ReturnEligibility(line_id=item.line_id, kind=kind, eligible=eligible, reasons=reasons,
                             deadline=deadline, returnable_quantity=max(returnable, 0) if eligible else 0)


# --- refunds ------------------------------------------------------------------------------------------

def line_refund(item: OrderItem, quantity: int, currency: str | None = None) -> Decimal:
    """What refunding ``quantity`` more units of a line returns.

    Cumulative rounding: the first k units of a line are worth round(paid × k / quantity), so refunding a line
    unit by unit, or all at once, returns exactly ``paid`` to the cent. Already refunded money is deducted.
    """
    done = item.refunded_quantity
    upto = min(done + quantity, item.quantity)
    amount = cents(item.paid * upto / item.quantity, currency) - cents(item.paid * done / item.quantity, currency)
    return max(min(amount, item.paid - item.refunded_amount), ZERO)


def refundable(order: Order) -> Decimal:
    """Everything still refundable: paid minus refunded (shipping included)."""
    return max(order.total_paid - order.refunded_total, ZERO)


def refund_quote(order: Order, lines: list[LineQuantity], rules: CommerceRules = DEFAULT_RULES, *,
                 reason_code: str = "no_reason") -> RefundQuote:
    """The amount to refund for these lines, with order-level discounts already prorated into ``item.paid``.

    Shipping is refunded per ``rules.refund_shipping``: with the last item of the order (a full refund),
    or for defects. Refuses unknown lines and quantities above what is left to refund.
    """
    if order.status in ("unpaid", "cancelled"):
        raise Conflict("order_not_refundable", details={"order_status": order.status})
    wanted: dict[str, int] = {}
    for line in lines:
        if line.quantity <= 0:
            raise ValidationFailed("invalid_quantity", details={"line_id": line.line_id})
        wanted[line.line_id] = wanted.get(line.line_id, 0) + line.quantity
    out = []
    for line_id, quantity in wanted.items():
        item = order.item(line_id)
        if item is None:
            raise ValidationFailed("unknown_order_line", details={"line_id": line_id})
        if quantity > item.quantity - item.refunded_quantity:
            raise Conflict("refund_exceeds_paid", details={"line_id": line_id,
                                                           "refundable_quantity": item.quantity - item.refunded_quantity})
        out.append(RefundQuoteLine(line_id=line_id, sku=item.sku, quantity=quantity, amount=line_refund(item, quantity, order.currency)))
    full = all(wanted.get(i.line_id, 0) >= i.quantity - i.refunded_quantity for i in order.items)
    shipping = ZERO
    if (rules.refund_shipping == "on_full_refund" and full) or (
            rules.refund_shipping == "defect_or_full" and (full or reason_code == "defect")):
        shipping = order.shipping_fee - order.shipping_refunded
    total = sum((line.amount for line in out), ZERO) + shipping
    left = refundable(order)
    if total > left:
        raise Conflict("refund_exceeds_paid", details={"refundable": format(left, "f")})
    return RefundQuote(currency=order.currency, lines=out, shipping=shipping, total=total,
                       refundable_after=left - total)


# --- price protection ---------------------------------------------------------------------------------

def price_protection_quote(order: Order, item: OrderItem, current_price: Decimal | None, now: datetime,
                           rules: CommerceRules = DEFAULT_RULES) -> PriceProtectionQuote:
    """价保: within the window after payment, a lower current price gives back the difference, once per line."""
    unit_paid = cents(item.paid / item.quantity, order.currency)
    units = item.quantity - item.refunded_quantity
    reasons = []
    deadline = order.paid_at + timedelta(days=rules.price_protection_days) if order.paid_at else None
    amount = ZERO
    if order.paid_at is None or order.status in ("unpaid", "cancelled", "refunded", "returned"):
        reasons.append(reason("order_not_paid"))
    elif deadline is not None and now > deadline:
        reasons.append(reason("price_window_passed", days=rules.price_protection_days))
    if item.price_protected:
        reasons.append(reason("price_already_protected"))
    if units <= 0:
        reasons.append(reason("already_returned"))
    if current_price is None:
        reasons.append(reason("price_unknown"))
    elif current_price >= unit_paid:
        reasons.append(reason("price_not_lower"))
    if not reasons and current_price is not None:
        amount = min(cents((unit_paid - current_price) * units, order.currency), item.paid - item.refunded_amount)
        reasons.append(reason("price_difference", amount=format(amount, "f"), currency=order.currency))
    return PriceProtectionQuote(line_id=item.line_id, eligible=amount > 0, amount=amount,
                                current_price=current_price, paid_unit_price=unit_paid, reasons=reasons,
                                deadline=deadline)


# --- risk ---------------------------------------------------------------------------------------------

def _phone_region(phone: str | None) -> str | None:
    if not phone:
        return None
    try:
        parsed = phonenumbers.parse(phone, "CN")
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed) if phonenumbers.is_possible_number(parsed) else None


def risk_flags(order: Order, *, buyer_refund_count: int = 0, rules: CommerceRules = DEFAULT_RULES) -> list[RiskFlag]:
    """Warnings an agent should see before acting on the order, each with its reason."""
    flags = []
    if order.address_changed_at and order.paid_at and order.address_changed_at > order.paid_at:
        flags.append(RiskFlag(code="address_changed_after_payment", severity="warning",
                              reason=reason("risk_address_changed")))
    if buyer_refund_count >= rules.many_refunds:
        flags.append(RiskFlag(code="many_refunds", severity="warning",
                              reason=reason("risk_many_refunds", count=buyer_refund_count)))
    if order.total_paid >= rules.high_value:
        flags.append(RiskFlag(code="high_value", severity="info",
                              reason=reason("risk_high_value", amount=format(order.total_paid, "f"),
                                            currency=order.currency)))
    address = order.shipping_address
    region = _phone_region((address.phone if address else None) or order.buyer.phone)
    if address and address.country and region and region != address.country.upper():
        flags.append(RiskFlag(code="phone_region_mismatch", severity="warning",
                              reason=reason("risk_phone_region", phone_region=region, country=address.country)))
    if order.fraud_score is not None and order.fraud_score >= rules.fraud_score_warning:
        flags.append(RiskFlag(code="fraud_score", severity="high",
                              reason=reason("risk_fraud_score", score=f"{order.fraud_score:.2f}")))
    return flags


# --- proactive care -----------------------------------------------------------------------------------

def stuck_shipment(shipment: Shipment, now: datetime, rules: CommerceRules = DEFAULT_RULES) -> StuckShipment | None:
    """A parcel in transit whose last tracking event is older than expected at that node."""
    if shipment.status not in ("in_transit", "exception") or not shipment.events:
        return None
    last = max(shipment.events, key=lambda e: e.at)
    expected = shipment.expected_hours_per_node or rules.stuck_hours
    hours = (now - last.at).total_seconds() / 3600
    if hours <= expected:
        return None
    return StuckShipment(tracking_number=shipment.tracking_number, carrier=shipment.carrier, node=last.node,
                         since=last.at, hours=round(hours, 1), expected_hours=expected)


def can_change_before_shipping(order: Order) -> str | None:
    """Cancel and address changes only before the parcel leaves; returns the refusal code or None."""
    if order.status in ("cancelled", "refunded", "returned"):
        return "order_closed"
    if order.shipments and any(s.status != "pending" for s in order.shipments):
        return "order_already_shipped"
    if order.status in ("shipped", "delivered", "completed", "partially_refunded"):
        return "order_already_shipped"
    return None
