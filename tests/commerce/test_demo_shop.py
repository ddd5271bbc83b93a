"""The built-in demo shop is a believable shop: its breadth, every order state, delays, and sound money."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from kefu.commerce import policies
from kefu.commerce.schemas import Order
from kefu.integrations.commerce.demo_shop import dataset

ANCHOR = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_the_demo_shop_has_a_few_hundred_products_and_thousands_of_orders_in_every_state() -> None:
    data = dataset(anchor=ANCHOR)
    categories = Counter(p.category for p in data.products)
    assert len(data.products) >= 200 and len(data.customers) >= 300 and len(data.orders) >= 2000
    assert {"apparel", "electronics", "fresh_food", "large_appliances", "customised"} <= set(categories)
    apparel = [p.title for p in data.products if p.category == "apparel"]
    assert {size for size in ("S", "M", "L", "XL") if any(t.endswith(f" {size}") for t in apparel)} == {
        "S", "M", "L", "XL"}  # apparel comes in sizes
    # Titles in Chinese and English.
    assert all(_cjk(p.title) and any(ch.isascii() and ch.isalpha() for ch in p.title) for p in data.products)

    orders = [Order.model_validate(o) for o in data.orders]
    statuses = Counter(o.status for o in orders)
    assert {"unpaid", "paid", "pre_sale", "shipped", "delivered", "partially_refunded", "returned", "cancelled",
            "refunded", "completed"} <= set(statuses)
    assert {o.sale_type for o in orders} == {"normal", "pre_sale", "flash_sale"}
    assert all(o.check_consistency() == [] for o in orders)  # every order adds up to the cent
    kinds = Counter(p.kind for o in orders for p in o.promotions)
    assert {"coupon", "spend_save", "item_discount", "shipping_discount"} <= set(kinds)

    shipped = [o for o in orders if o.shipments]
    assert all(s.events and s.tracking_number for o in shipped for s in o.shipments)  # logistics timelines
    stuck = [o for o in orders for s in o.shipments if policies.stuck_shipment(s, ANCHOR)]
    assert 0 < len(stuck) < len(shipped) // 4  # some delayed, most not


def test_the_demo_shop_is_the_same_every_time() -> None:
    assert dataset(seed=7, anchor=ANCHOR) == dataset(seed=7, anchor=ANCHOR)
    first, again = dataset(seed=7, anchor=ANCHOR), dataset.__wrapped__(7, ANCHOR)  # type: ignore[attr-defined]
    assert [o["order_id"] for o in first.orders[:50]] == [o["order_id"] for o in again.orders[:50]]
    assert first.orders[10] == again.orders[10]
