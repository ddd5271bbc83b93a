"""The built-in demo shop: a reproducible order system generated from a seed, in memory.

Why in memory: ``make run`` must start in seconds, and a generated shop needs no seeding at all. The same
seed and anchor day give the same products, customers (``c1001`` …, matching the demo page's
``?customer=c1001``) and orders, in every state (unpaid, paid, pre-sale, flash sale, shipped, delivered,
partially refunded, returned, cancelled), with logistics timelines relative to the anchor, some delayed.
Actions change an in-memory overlay per tenant (one ``DemoShop`` per tenant); a restart resets the shop, as
a demo should.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from kefu.commerce.policies import build_item_paid, cents, line_refund
from kefu.commerce.ports import ActionOutcome, SearchField
from kefu.commerce.schemas import (
    Address,
    Order,
    OrderItem,
    Refund,
    ReturnLine,
    ReturnRequest,
)
from kefu.core.errors import Conflict, NotFound

DEFAULT_SEED = 20261122
N_CUSTOMERS = 300
N_ORDERS = 3000

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["小明", "芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "超", "秀英"]
CITIES = [("上海市", "上海市", "浦东新区"), ("北京市", "北京市", "朝阳区"), ("广东省", "深圳市", "南山区"),
          ("浙江省", "杭州市", "西湖区"), ("四川省", "成都市", "武侯区"), ("湖北省", "武汉市", "洪山区"),
          ("江苏省", "南京市", "鼓楼区"), ("广东省", "广州市", "天河区")]
CARRIERS = [("顺丰速运 SF Express", "SF", 24), ("中通快递 ZTO", "ZTO", 36), ("圆通速递 YTO", "YT", 36),
            ("京东物流 JD Logistics", "JDL", 24)]
HUBS = ["揽收网点 pick-up point", "杭州转运中心 Hangzhou hub", "上海转运中心 Shanghai hub",
        "武汉转运中心 Wuhan hub", "广州转运中心 Guangzhou hub", "派送网点 delivery station"]

# (category, base titles, price range, sizes, flags)
CATALOGUE: list[tuple[str, list[str], tuple[int, int], list[str], dict[str, bool]]] = [
    ("apparel", ["纯棉T恤 Cotton T-shirt", "牛仔裤 Jeans", "羽绒服 Down jacket", "卫衣 Hoodie", "连衣裙 Dress",
                 "运动鞋 Sneakers", "衬衫 Shirt", "风衣 Trench coat"], (59, 899), ["S", "M", "L", "XL"], {}),
    ("electronics", ["蓝牙耳机 Bluetooth earbuds", "智能手表 Smart watch", "充电宝 Power bank",
                     "机械键盘 Mechanical keyboard", "平板电脑 Tablet", "手机 Smartphone", "显示器 Monitor"],
     (99, 6999), ["黑 Black", "白 White"], {}),
    ("fresh_food", ["阳澄湖大闸蟹 Hairy crab", "赣南脐橙 Navel oranges", "车厘子 Cherries", "牛排 Steak",
                    "三文鱼 Salmon"], (39, 399), ["1kg", "2.5kg"], {}),
    ("large_appliances", ["冰箱 Refrigerator", "洗衣机 Washing machine", "空调 Air conditioner",
                          "电视 Television"], (1999, 9999), ["标准 Standard"], {}),
    ("customised", ["定制刻字钢笔 Engraved pen", "定制T恤 Custom-printed T-shirt", "定制相册 Photo book"],
     (49, 399), ["定制 Custom"], {"customised": True}),
    ("beauty", ["口红 Lipstick", "面霜 Face cream", "精华液 Serum"], (69, 899), ["标准 Standard"],
     {"hygiene": True}),
    ("home", ["四件套 Bedding set", "保温杯 Vacuum flask", "收纳箱 Storage box", "台灯 Desk lamp"], (29, 599),
     ["标准 Standard"], {}),
]

# The first customer's orders show every state (the demo page opens as c1001).
SHOWCASE = ["delivered", "shipped_delayed", "paid", "unpaid", "partially_refunded", "returned", "pre_sale",
            "flash_shipped", "cancelled", "delivered_old", "shipped"]
STATES = ["delivered"] * 8 + ["delivered_old"] * 6 + ["shipped"] * 5 + ["shipped_delayed"] * 2 + ["paid"] * 3 + [
    "unpaid", "pre_sale", "flash_shipped", "partially_refunded", "returned", "cancelled", "refunded"]


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    category: str
    price: Decimal
    flags: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    phone: str
    email: str
    address: tuple[str, str, str, str]


@dataclass(frozen=True)
class Dataset:
    products: tuple[Product, ...]
    customers: tuple[Customer, ...]
    orders: tuple[dict[str, Any], ...]  # canonical order dicts, built lazily into Order models


def _products(rng: random.Random) -> list[Product]:
    out = []
    for category, titles, (low, high), variants, flags in CATALOGUE:
        for t_index, title in enumerate(titles):
            base = Decimal(rng.randrange(low, high)) + Decimal("0.90")
            for v_index, variant in enumerate(variants):
                for edition in range(4 if category == "apparel" else 3):
                    sku = f"{category[:3].upper()}-{t_index:02d}{v_index}{edition}"
                    extra = Decimal(edition * 10)
                    out.append(Product(sku, f"{title} {variant}" + (f" #{edition + 1}" if edition else ""), category,
                                       base + extra, tuple(flags.items())))
    return out


def _customers(rng: random.Random) -> list[Customer]:
    out = []
    for n in range(N_CUSTOMERS):
        cid = f"c{1001 + n}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        phone = f"+86138{(n * 7919 + 10000000) % 100000000:08d}"
        province, city, district = rng.choice(CITIES)
        out.append(Customer(cid, name, phone, f"{cid}@demo-shop.example", (province, city, district,
                                                                          f"幸福路 {rng.randrange(1, 999)} 号")))
    return out


def _timeline(rng: random.Random, carrier: tuple[str, str, int], shipped: datetime, now: datetime, *,
              delivered: bool, delayed: bool) -> tuple[list[dict[str, Any]], datetime | None]:
    events = [{"at": shipped, "node": HUBS[0], "status": "picked_up", "description": "已揽收 Picked up"}]
    at = shipped
    hubs = rng.sample(HUBS[1:5], 2)
    for hub in hubs:
        at = at + timedelta(hours=rng.randrange(6, 20))
        if at >= now:
            break
        events.append({"at": at, "node": hub, "status": "in_transit", "description": f"到达 Arrived at {hub}"})
    if delayed:
        return events, None
    if delivered:
        at = at + timedelta(hours=rng.randrange(6, 18))
        events.append({"at": at, "node": HUBS[5], "status": "out_for_delivery", "description": "派送中 Out for delivery"})
        at = at + timedelta(hours=rng.randrange(1, 6))
        events.append({"at": at, "node": HUBS[5], "status": "delivered", "description": "已签收 Delivered"})
        return events, at
    return events, None


def _order(n: int, rng: random.Random, products: list[Product], customer: Customer, state: str,
           anchor: datetime) -> dict[str, Any]:
    order_id = f"DS{100001 + n}"
    created = anchor - timedelta(days={"delivered_old": rng.randrange(20, 60), "unpaid": 0,
                                       "shipped_delayed": rng.randrange(5, 8)}.get(state, rng.randrange(1, 6)),
                                 minutes=rng.randrange(0, 1440))
    picks = rng.sample(products, rng.choice([1, 1, 1, 2, 2, 3]))
    lines = []
    for index, product in enumerate(picks):
        qty = 1 if product.category in ("large_appliances", "electronics") else rng.choice([1, 1, 2, 3])
        item_discount = cents(product.price * qty * Decimal("0.2")) if state == "flash_shipped" else Decimal("0")
        lines.append((index, product, qty, item_discount))
    subtotal = sum((p.price * q for _, p, q, _ in lines), Decimal("0"))
    promotions = []
    order_discount = Decimal("0")
    if subtotal >= 299 and rng.random() < 0.6:
        save = Decimal("50") if subtotal >= 599 else Decimal("30")
        promotions.append({"kind": "spend_save", "title": f"满{int(save * 10 - 1 if save == 30 else 599)}减{save}",
                           "amount": save, "threshold": Decimal("299") if save == 30 else Decimal("599")})
        order_discount += save
    if rng.random() < 0.3:
        coupon = Decimal(rng.choice([5, 10, 20]))
        promotions.append({"kind": "coupon", "title": f"店铺优惠券 Shop coupon -{coupon}", "amount": coupon,
                           "code": f"KEFU{int(coupon)}"})
        order_discount += coupon
    for _, product, _, disc in lines:
        if disc:
            promotions.append({"kind": "item_discount", "title": "限时秒杀 Flash sale", "amount": disc,
                               "sku": product.sku})
    shipping_fee = Decimal("0") if subtotal >= 99 else Decimal("8")
    if shipping_fee and rng.random() < 0.3:
        promotions.append({"kind": "shipping_discount", "title": "运费券 Shipping coupon", "amount": Decimal("8")})
        shipping_fee = Decimal("0")
    order_discount = min(order_discount, subtotal - sum((d for *_, d in lines), Decimal("0")) - Decimal("1"))
    paid = build_item_paid([(p.price, q, d) for _, p, q, d in lines], order_discount)
    items = []
    for (index, product, qty, _), line_paid in zip(lines, paid, strict=True):
        items.append({"line_id": f"L{index + 1}", "sku": product.sku, "title": product.title,
                      "category": product.category, "quantity": qty, "unit_price": product.price, "paid": line_paid,
                      **dict(product.flags)})
    total = sum(paid, Decimal("0")) + shipping_fee
    province, city, district, line1 = customer.address
    order: dict[str, Any] = {
        "order_id": order_id, "marketplace": "demo_shop", "currency": "CNY", "created_at": created,
        "updated_at": created, "source_version": 1,
        "sale_type": {"pre_sale": "pre_sale", "flash_shipped": "flash_sale"}.get(state, "normal"),
        "buyer": {"buyer_id": customer.id, "name": customer.name, "phone": customer.phone, "email": customer.email},
        "shipping_address": {"name": customer.name, "phone": customer.phone, "country": "CN", "province": province,
                             "city": city, "district": district, "line1": line1},
        "items": items, "subtotal": subtotal, "discount_total": subtotal - sum(paid, Decimal("0")),
        "shipping_fee": shipping_fee, "total_paid": total, "promotions": promotions,
        "fraud_score": round(rng.random() ** 6, 2),
    }
    if state == "unpaid":
        order.update(status="unpaid", total_paid=total)
        return order
    paid_at = created + timedelta(minutes=rng.randrange(1, 30))
    order["paid_at"] = paid_at
    order["payments"] = [{"method": rng.choice(["alipay", "wechat_pay", "card"]), "amount": total,
                          "transaction_id": f"PAY{order_id[2:]}{rng.randrange(1000, 9999)}", "paid_at": paid_at}]
    if state in ("paid", "pre_sale"):
        order["status"] = state
        return order
    if state == "cancelled":
        order.update(status="cancelled", refunded_total=total,
                     refunds=[{"refund_id": f"RF{order_id[2:]}", "amount": total, "reason": "cancelled",
                               "created_at": paid_at + timedelta(hours=1)}])
        for item in items:
            item.update(refunded_quantity=item["quantity"], refunded_amount=item["paid"])
        return order
    carrier = CARRIERS[n % len(CARRIERS)]
    shipped_at = paid_at + timedelta(hours=rng.randrange(4, 40))
    delivered = state in ("delivered", "delivered_old", "partially_refunded", "returned", "refunded")
    events, delivered_at = _timeline(rng, carrier, shipped_at, anchor, delivered=delivered,
                                     delayed=state == "shipped_delayed")
    order["shipments"] = [{"carrier": carrier[0], "tracking_number": f"{carrier[1]}{7000000000 + n * 37:d}",
                           "status": "delivered" if delivered_at else "in_transit", "shipped_at": shipped_at,
                           "delivered_at": delivered_at, "expected_hours_per_node": carrier[2], "events": events}]
    order["status"] = "delivered" if delivered_at else "shipped"
    if state == "delivered_old":
        order["status"] = "completed"
    last = delivered_at or shipped_at
    if state == "partially_refunded":
        item = items[0]
        amount = line_refund(OrderItem(**item), 1)
        item.update(refunded_quantity=1, refunded_amount=amount, returned_quantity=1)
        order.update(status="partially_refunded", refunded_total=amount,
                     returns=[{"return_id": f"RT{order_id[2:]}", "status": "completed", "lines": [
                         {"line_id": item["line_id"], "quantity": 1}], "created_at": last + timedelta(days=1)}],
                     refunds=[{"refund_id": f"RF{order_id[2:]}", "amount": amount, "lines": [
                         {"line_id": item["line_id"], "quantity": 1}], "created_at": last + timedelta(days=2)}])
    if state in ("returned", "refunded"):
        for item in items:
            item.update(refunded_quantity=item["quantity"], refunded_amount=item["paid"],
                        returned_quantity=item["quantity"] if state == "returned" else 0)
        order.update(status=state, refunded_total=total, shipping_refunded=shipping_fee,
                     refunds=[{"refund_id": f"RF{order_id[2:]}", "amount": total - shipping_fee,
                               "shipping": shipping_fee, "created_at": last + timedelta(days=2)}])
        if state == "returned":
            order["returns"] = [{"return_id": f"RT{order_id[2:]}", "status": "completed", "lines": [
                {"line_id": i["line_id"], "quantity": i["quantity"]} for i in items],
                "created_at": last + timedelta(days=1)}]
    return order


@cache
def dataset(seed: int = DEFAULT_SEED, anchor: datetime | None = None) -> Dataset:
    """Generate (once per seed and anchor) the shop's products, customers and orders."""
    anchor = anchor or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    products = _products(rng)
    customers = _customers(rng)
    orders = []
    for n in range(N_ORDERS):
        if n < len(SHOWCASE):
            customer, state = customers[0], SHOWCASE[n]
        else:
            customer, state = customers[rng.randrange(len(customers))], rng.choice(STATES)
        orders.append(_order(n, rng, products, customer, state, anchor))
    return Dataset(tuple(products), tuple(customers), tuple(orders))


class DemoShop:
    """One tenant's demo shop: the generated data plus the changes made through actions."""

    marketplace = "demo_shop"

    def __init__(self, *, seed: int = DEFAULT_SEED, anchor: datetime | None = None) -> None:
        self.data = dataset(seed, anchor)
        self._raw = {o["order_id"]: o for o in self.data.orders}
        self._built: dict[str, Order] = {}
        self._done: dict[str, ActionOutcome] = {}
        self._index: dict[tuple[str, str], list[str]] = {}
        for o in self.data.orders:
            keys = [("phone", o["buyer"]["phone"]), ("email", o["buyer"]["email"]),
                    ("buyer_id", o["buyer"]["buyer_id"])]
            keys += [("tracking_number", s["tracking_number"]) for s in o.get("shipments", [])]
            for key in keys:
                self._index.setdefault(key, []).append(o["order_id"])
        self._prices = {p.sku: p.price for p in self.data.products}

    def _order(self, order_id: str) -> Order | None:
        built = self._built.get(order_id)
        if built is None:
            raw = self._raw.get(order_id)
            if raw is None:
                return None
            built = self._built[order_id] = Order.model_validate(raw)
        return built

    async def get_order(self, order_id: str) -> Order | None:
        return self._order(order_id)

    async def search(self, field: SearchField, value: str, *, limit: int = 50) -> list[Order]:
        if field == "order_id":
            found = self._order(value)
            return [found] if found else []
        ids = self._index.get((field, value), [])
        orders = [o for o in (self._order(i) for i in ids) if o is not None]
        return sorted(orders, key=lambda o: o.created_at, reverse=True)[:limit]

    async def current_price(self, sku: str) -> Decimal | None:
        price = self._prices.get(sku)
        if price is None:
            return None
        # A deterministic third of the catalogue is on promotion now (so price protection has cases).
        return cents(price * Decimal("0.85")) if sum(map(ord, sku)) % 3 == 0 else price

    # --- actions ------------------------------------------------------------------------------------

    def _replay(self, key: str) -> ActionOutcome | None:
        return self._done.get(key)

    def _save(self, key: str, order: Order, ref: str | None = None) -> ActionOutcome:
        order = order.model_copy(update={"updated_at": datetime.now(UTC),
                                         "source_version": (order.source_version or 0) + 1})
        self._built[order.order_id] = order
        outcome = self._done[key] = ActionOutcome(order, ref)
        return outcome

    def _require(self, order_id: str) -> Order:
        order = self._order(order_id)
        if order is None:
            raise NotFound("order_not_found")
        return order.model_copy(deep=True)

    async def cancel(self, order_id: str, *, reason: str, idempotency_key: str) -> ActionOutcome:
        if (done := self._replay(idempotency_key)) is not None:
            return done
        order = self._require(order_id)
        if order.shipments:
            raise Conflict("order_already_shipped")
        refund_total = order.total_paid if order.paid_at else Decimal("0")
        for item in order.items:
            item.refunded_quantity, item.refunded_amount = item.quantity, item.paid if order.paid_at else Decimal("0")
        order.status = "cancelled"
        order.refunded_total = refund_total
        if refund_total:
            order.shipping_refunded = order.shipping_fee
            order.refunds.append(Refund(refund_id=f"RF{order_id[2:]}C", amount=refund_total, reason=reason,
                                        created_at=datetime.now(UTC)))
        return self._save(idempotency_key, order)

    async def change_address(self, order_id: str, *, address: Address, idempotency_key: str) -> ActionOutcome:
        if (done := self._replay(idempotency_key)) is not None:
            return done
        order = self._require(order_id)
        if order.shipments:
            raise Conflict("order_already_shipped")
        order.shipping_address = address
        order.address_changed_at = datetime.now(UTC)
        return self._save(idempotency_key, order)

    async def create_return(self, order_id: str, *, kind: str, reason: str, lines: list[ReturnLine],
                            idempotency_key: str) -> ActionOutcome:
        if (done := self._replay(idempotency_key)) is not None:
            return done
        order = self._require(order_id)
        ref = f"RT{order_id[2:]}{len(order.returns) + 1}"
        order.returns.append(ReturnRequest(return_id=ref, kind=kind, reason=reason, status="approved", lines=lines,
                                           created_at=datetime.now(UTC)))
        return self._save(idempotency_key, order, ref)

    async def request_refund(self, order_id: str, *, amount: Decimal, shipping: Decimal, lines: list[ReturnLine],
                             reason: str, idempotency_key: str) -> ActionOutcome:
        if (done := self._replay(idempotency_key)) is not None:
            return done
        order = self._require(order_id)
        if amount + shipping > order.total_paid - order.refunded_total:
            raise Conflict("refund_exceeds_paid")
        remaining = amount
        for line in lines:
            item = order.item(line.line_id)
            if item is None:
                raise NotFound("order_line_not_found")
            share = min(line_refund(item, line.quantity), remaining)
            item.refunded_quantity += line.quantity
            item.refunded_amount += share
            remaining -= share
        order.shipping_refunded += shipping
        order.refunded_total += amount + shipping
        ref = f"RF{order_id[2:]}{len(order.refunds) + 1}"
        order.refunds.append(Refund(refund_id=ref, amount=amount + shipping, shipping=shipping, reason=reason,
                                    lines=lines, created_at=datetime.now(UTC)))
        order.status = "refunded" if order.refunded_total >= order.total_paid else "partially_refunded"
        return self._save(idempotency_key, order, ref)

    async def claim_price_protection(self, order_id: str, *, line_id: str, amount: Decimal,
                                     idempotency_key: str) -> ActionOutcome:
        if (done := self._replay(idempotency_key)) is not None:
            return done
        order = self._require(order_id)
        item = order.item(line_id)
        if item is None:
            raise NotFound("order_line_not_found")
        if item.price_protected:
            raise Conflict("price_already_protected")
        item.price_protected = True
        item.refunded_amount += amount
        order.refunded_total += amount
        ref = f"PP{order_id[2:]}{line_id}"
        order.refunds.append(Refund(refund_id=ref, amount=amount, reason="price_protection",
                                    lines=[ReturnLine(line_id=line_id, quantity=item.quantity)],
                                    created_at=datetime.now(UTC)))
        return self._save(idempotency_key, order, ref)


async def seed_demo_customers(runtime: Any, tenant_id: str, *, count: int = 20) -> int:
    """Create contacts for the demo shop's first customers (identities: shop customer id, email, phone), so
    agents see them before they write; idempotent (existing identities are left alone). Returns how many new."""
    from kefu.contacts import actions as contact_actions
    from kefu.contacts import service as contact_service
    from kefu.contacts.schemas import ContactCreate, IdentityIn

    created = 0
    uow = runtime.unit_of_work()
    try:
        for customer in dataset().customers[:count]:
            if await contact_service.find_identity(session=uow.session, tenant_id=tenant_id, kind="external",
                                                   value=customer.id):
                continue
            await contact_actions.do_create_contact(uow, tenant_id=tenant_id, data=ContactCreate(
                name=customer.name, email=customer.email, phone=customer.phone, attributes={"demo_shop": True},
                identities=[IdentityIn(kind="external", value=customer.id),
                            IdentityIn(kind="email", value=customer.email),
                            IdentityIn(kind="phone", value=customer.phone)]))
            created += 1
        await uow.commit()
    finally:
        await uow.session.close()
    return created
