"""The after-sales rules: refunds add up to the cent, returns and price protection say why, risk is explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.commerce import policies
from kefu.commerce.schemas import LineQuantity, Order, OrderItem, Shipment, TrackingEvent
from kefu.core.errors import Conflict, ValidationFailed

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_order(lines: list[tuple[Decimal, int, Decimal]], *, order_discount: Decimal = Decimal("0"),
               shipping: Decimal = Decimal("0"), status: str = "delivered", categories: list[str] | None = None,
               delivered_days_ago: int = 2) -> Order:
    paid = policies.build_item_paid(lines, order_discount)
    items = [OrderItem(line_id=f"L{i + 1}", sku=f"SKU{i}", title=f"item {i}", quantity=q, unit_price=p, paid=amount,
                       category=(categories or [])[i] if categories and i < len(categories) else "general")
             for i, ((p, q, _), amount) in enumerate(zip(lines, paid, strict=True))]
    delivered = NOW - timedelta(days=delivered_days_ago)
    return Order(order_id="T1", marketplace="test", status=status, currency="CNY", created_at=NOW - timedelta(days=10),
                 paid_at=NOW - timedelta(days=10), items=items,
                 subtotal=sum((p * q for p, q, _ in lines), Decimal("0")), shipping_fee=shipping,
                 total_paid=sum(paid, Decimal("0")) + shipping,
                 shipments=[Shipment(carrier="SF", tracking_number="SF1", status="delivered", delivered_at=delivered)])


def apply(order: Order, quote) -> Order:  # type: ignore[no-untyped-def]
    """What the order looks like after the quoted refund went through."""
    order = order.model_copy(deep=True)
    for line in quote.lines:
        item = order.item(line.line_id)
        item.refunded_quantity += line.quantity
        item.refunded_amount += line.amount
    order.shipping_refunded += quote.shipping
    order.refunded_total += quote.total
    return order


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2)
line = st.tuples(money, st.integers(min_value=1, max_value=9), st.decimals(min_value=0, max_value=1, places=2))


@st.composite
def orders(draw):  # type: ignore[no-untyped-def]
    raw = draw(st.lists(line, min_size=1, max_size=5))
    lines = [(p, q, min(p * q, (p * q * d).quantize(Decimal("0.01")))) for p, q, d in raw]
    net = sum((p * q - d for p, q, d in lines), Decimal("0"))
    discount = draw(st.decimals(min_value=0, max_value=net, places=2))
    shipping = draw(st.sampled_from([Decimal("0"), Decimal("8"), Decimal("12.50")]))
    return make_order(lines, order_discount=discount, shipping=shipping)


@settings(max_examples=120, deadline=None)
@given(orders(), st.data())
def test_refunds_never_exceed_what_was_paid_and_everything_returns_it_exactly(order: Order, data) -> None:  # type: ignore[no-untyped-def]
    assert order.check_consistency() == []
    current, refunded = order, Decimal("0")
    # Refund in random partial steps until nothing is left.
    while any(i.refunded_quantity < i.quantity for i in current.items):
        open_lines = [i for i in current.items if i.refunded_quantity < i.quantity]
        picks = data.draw(st.lists(st.sampled_from(open_lines), min_size=1, max_size=len(open_lines), unique_by=lambda i: i.line_id))
        wanted = [LineQuantity(line_id=i.line_id, quantity=data.draw(st.integers(1, i.quantity - i.refunded_quantity)))
                  for i in picks]
        quote = policies.refund_quote(current, wanted)
        assert quote.total >= 0
        refunded += quote.total
        assert refunded <= order.total_paid
        for q in quote.lines:
            item = current.item(q.line_id)
            assert item.refunded_amount + q.amount <= item.paid
        current = apply(current, quote)
    assert refunded == order.total_paid  # to the cent, shipping included
    assert all(i.refunded_amount == i.paid for i in current.items)


@settings(max_examples=200, deadline=None)
@given(st.lists(money, min_size=1, max_size=8), money)
def test_allocation_never_creates_or_loses_a_cent(weights: list[Decimal], amount: Decimal) -> None:
    shares = policies.allocate(amount, weights)
    assert sum(shares) == amount
    assert all(s >= 0 for s in shares)


def test_order_discounts_are_prorated_by_paid_amount() -> None:
    # 满300减30 over lines of 200 and 100: they pay 180 and 90.
    assert policies.build_item_paid([(Decimal("100"), 2, Decimal("0")), (Decimal("100"), 1, Decimal("0"))],
                                    Decimal("30")) == [Decimal("180.00"), Decimal("90.00")]


def test_refund_quote_refuses_more_than_ordered_unknown_lines_and_zero() -> None:
    order = make_order([(Decimal("50"), 2, Decimal("0"))], shipping=Decimal("8"))
    with pytest.raises(Conflict) as exc:
        policies.refund_quote(order, [LineQuantity(line_id="L1", quantity=3)])
    assert exc.value.code == "refund_exceeds_paid"
    with pytest.raises(ValidationFailed) as bad:
        policies.refund_quote(order, [LineQuantity(line_id="nope", quantity=1)])
    assert bad.value.code == "unknown_order_line"
    with pytest.raises(pydantic.ValidationError):
        LineQuantity(line_id="L1", quantity=-1)


def test_shipping_is_refunded_with_the_last_item_or_for_defects() -> None:
    order = make_order([(Decimal("50"), 2, Decimal("0"))], shipping=Decimal("8"))
    assert policies.refund_quote(order, [LineQuantity(line_id="L1", quantity=1)]).shipping == 0
    assert policies.refund_quote(order, [LineQuantity(line_id="L1", quantity=1)], reason_code="defect").shipping == 8
    full = policies.refund_quote(order, [LineQuantity(line_id="L1", quantity=2)])
    assert full.total == order.total_paid == Decimal("108")
    never = policies.CommerceRules(refund_shipping="never")
    assert policies.refund_quote(order, [LineQuantity(line_id="L1", quantity=2)], never).total == Decimal("100")


def test_return_eligibility_says_why_in_both_languages() -> None:
    order = make_order([(Decimal("50"), 1, Decimal("0")), (Decimal("88"), 1, Decimal("0"))],
                       categories=["apparel", "fresh_food"])
    ok = policies.return_eligibility(order, order.items[0], NOW)
    assert ok.eligible and ok.reasons[0].code == "eligible_no_reason" and ok.returnable_quantity == 1
    fresh = policies.return_eligibility(order, order.items[1], NOW)
    assert not fresh.eligible and fresh.reasons[0].code == "excluded_fresh_food"
    assert "生鲜" in fresh.reasons[0].zh and "Fresh food" in fresh.reasons[0].en
    assert policies.return_eligibility(order, order.items[1], NOW, kind="defect").eligible
    late = make_order([(Decimal("50"), 1, Decimal("0"))], delivered_days_ago=8)
    verdict = policies.return_eligibility(late, late.items[0], NOW)
    assert not verdict.eligible and verdict.reasons[0].code == "window_passed" and "7" in verdict.reasons[0].zh
    assert policies.return_eligibility(late, late.items[0], NOW, kind="defect").eligible  # 15 days for defects
    longer = policies.CommerceRules(category_return_days={"general": 10})
    assert policies.return_eligibility(late, late.items[0], NOW, longer).eligible


def test_a_shop_excluded_category_is_named_in_words() -> None:
    order = make_order([(Decimal("3999"), 1, Decimal("0")), (Decimal("20"), 1, Decimal("0"))],
                       categories=["large_appliances", "garden_tools"])
    rules = policies.CommerceRules(excluded_categories=["large_appliances", "garden_tools"])
    known, own = (policies.return_eligibility(order, item, NOW, rules).reasons[0] for item in order.items)
    assert known.code == own.code == "excluded_category"
    assert "大家电" in known.zh and "large appliances" in known.en
    assert "garden tools" in own.zh and "garden tools" in own.en  # a shop's own code, spaced
    assert "_" not in known.zh + known.en + own.zh + own.en


def test_hygiene_goods_once_opened_and_customised_goods_are_not_returnable_without_reason() -> None:
    order = make_order([(Decimal("99"), 1, Decimal("0")), (Decimal("59"), 1, Decimal("0"))])
    order.items[0].hygiene, order.items[0].opened = True, True
    order.items[1].customised = True
    codes = [policies.return_eligibility(order, i, NOW).reasons[0].code for i in order.items]
    assert codes == ["opened_hygiene", "excluded_customised"]


def test_price_protection_gives_the_difference_once_within_the_window() -> None:
    order = make_order([(Decimal("100"), 2, Decimal("0"))], order_discount=Decimal("20"))  # paid 90 per unit
    item = order.items[0]
    quote = policies.price_protection_quote(order, item, Decimal("80"), NOW)
    assert quote.eligible and quote.amount == Decimal("20.00") and quote.paid_unit_price == Decimal("90.00")
    assert not policies.price_protection_quote(order, item, Decimal("95"), NOW).eligible
    assert not policies.price_protection_quote(order, item, Decimal("80"), NOW + timedelta(days=30)).eligible
    item.price_protected = True
    again = policies.price_protection_quote(order, item, Decimal("80"), NOW)
    assert not again.eligible and again.reasons[0].code == "price_already_protected"


@settings(max_examples=150, deadline=None)
@given(orders(), st.data())
def test_price_protection_pays_the_difference_at_most_once_per_line(order: Order, data) -> None:  # type: ignore[no-untyped-def]
    line_id = data.draw(st.sampled_from([i.line_id for i in order.items]))
    refunded = data.draw(st.integers(0, order.item(line_id).quantity))
    if refunded:  # some units may have been refunded already
        order = apply(order, policies.refund_quote(order, [LineQuantity(line_id=line_id, quantity=refunded)]))
    item = order.item(line_id)
    unit_paid = policies.cents(item.paid / item.quantity)
    price = data.draw(st.decimals(min_value=0, max_value=item.unit_price * 2, places=2))
    now = order.paid_at + timedelta(days=data.draw(st.integers(0, 40)), hours=data.draw(st.integers(0, 23)))
    quote = policies.price_protection_quote(order, item, price, now)
    assert all(r.zh and r.en for r in quote.reasons)
    units = item.quantity - item.refunded_quantity
    expected = min(policies.cents((unit_paid - price) * units), item.paid - item.refunded_amount)
    within = now <= order.paid_at + timedelta(days=policies.DEFAULT_RULES.price_protection_days)
    if within and units > 0 and price < unit_paid and expected > 0:
        assert quote.eligible and quote.amount == expected
    else:
        assert not quote.eligible and quote.amount == 0
    assert quote.amount <= item.paid - item.refunded_amount  # never more than is left of what was paid
    if quote.eligible:
        # Granted once: the line is marked, and no later, even lower price pays out again.
        granted = item.model_copy(update={"price_protected": True})
        lower = data.draw(st.decimals(min_value=0, max_value=price, places=2))
        again = policies.price_protection_quote(order, granted, lower, now)
        assert not again.eligible and again.amount == 0
        assert "price_already_protected" in [r.code for r in again.reasons]


def test_risk_flags_explain_themselves() -> None:
    order = make_order([(Decimal("6000"), 1, Decimal("0"))])
    order.address_changed_at = NOW
    order.fraud_score = 0.9
    order.shipping_address = order.shipping_address or None
    from kefu.commerce.schemas import Address

    order.shipping_address = Address(country="US", phone="+8613800138000")
    flags = {f.code: f for f in policies.risk_flags(order, buyer_refund_count=5)}
    assert set(flags) == {"address_changed_after_payment", "many_refunds", "high_value", "phone_region_mismatch",
                          "fraud_score"}
    for flag in flags.values():  # every warning says why, in both languages
        assert flag.reason.code and flag.reason.zh != flag.reason.en
        assert any("\u4e00" <= ch <= "\u9fff" for ch in flag.reason.zh) and flag.reason.en.isascii()
        assert "{" not in flag.reason.zh + flag.reason.en  # every placeholder filled
    assert "5" in flags["many_refunds"].reason.zh and "5" in flags["many_refunds"].reason.en
    assert "0.90" in flags["fraud_score"].reason.en and "6000" in flags["high_value"].reason.zh
    assert "CN" in flags["phone_region_mismatch"].reason.en and "US" in flags["phone_region_mismatch"].reason.zh
    assert flags["fraud_score"].severity == "high"
    calm = make_order([(Decimal("60"), 1, Decimal("0"))])
    assert policies.risk_flags(calm) == []


def test_a_parcel_is_stuck_after_the_expected_hours_at_its_last_node() -> None:
    shipment = Shipment(carrier="ZTO", tracking_number="ZTO1", status="in_transit", expected_hours_per_node=36,
                        events=[TrackingEvent(at=NOW - timedelta(hours=40), node="杭州转运中心", status="in_transit")])
    stuck = policies.stuck_shipment(shipment, NOW)
    assert stuck is not None and stuck.node == "杭州转运中心" and stuck.hours == 40.0
    assert policies.stuck_shipment(shipment, NOW - timedelta(hours=5)) is None
