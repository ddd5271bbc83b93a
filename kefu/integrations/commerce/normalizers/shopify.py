"""Shopify Admin REST ``Order`` (https://shopify.dev/docs/api/admin-rest/latest/resources/order) → ``Order``.

Line paid = price × quantity − its ``discount_allocations`` (Shopify already spreads order-level discounts
over lines); taxes added on top of prices are prorated over the lines so that lines + shipping = total_price.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from kefu.commerce.schemas import Order
from kefu.integrations.commerce.normalizers import finish, fit_lines, invalid, money, need, quantity, timestamp


def _status(p: dict[str, Any]) -> str:
    financial = p.get("financial_status") or "pending"
    fulfillment = p.get("fulfillment_status")
    if p.get("cancelled_at"):
        return "cancelled"
    if financial == "refunded":
        return "refunded"
    if financial in ("pending", "authorized", "voided", "expired"):
        return "unpaid"
    if financial == "partially_refunded":
        return "partially_refunded"
    if fulfillment in ("fulfilled", "partial"):
        delivered = [f for f in p.get("fulfillments") or [] if f.get("shipment_status") == "delivered"]
        return "delivered" if delivered and fulfillment == "fulfilled" else "shipped"
    return "paid"


def normalize(p: dict[str, Any]) -> Order:
    order_id = str(need(p, "id"))
    currency = str(need(p, "currency")).upper()
    amount_of = partial(money, currency=currency)  # rounded to the currency's minor unit
    lines = p.get("line_items")
    if not isinstance(lines, list) or not lines:
        raise invalid("missing_field", field="line_items")
    items, paid = [], []
    for n, li in enumerate(lines):
        where = f"line_items[{n}]."
        qty = quantity(need(li, "quantity", where), where + "quantity")
        price = amount_of(need(li, "price", where), where + "price")
        discount = sum((amount_of(a.get("amount"), where + "discount_allocations") for a in li.get("discount_allocations")
                        or []), Decimal("0")) or amount_of(li.get("total_discount"), where + "total_discount")
        if discount > price * qty:
            raise invalid("discount_exceeds_price", field=where + "discount_allocations")
        paid.append(price * qty - discount)
        items.append({"line_id": str(need(li, "id", where)), "sku": li.get("sku") or str(li.get("variant_id") or li["id"]),
                      "title": li.get("name") or li.get("title") or "", "category": li.get("product_type") or "general",
                      "quantity": qty, "unit_price": price})
    shipping = sum((amount_of(s.get("discounted_price", s.get("price")), "shipping_lines.price")
                    for s in p.get("shipping_lines") or []), Decimal("0"))
    total = amount_of(need(p, "total_price"), "total_price")
    for item, amount in zip(items, fit_lines(paid, shipping, total, currency), strict=True):
        item["paid"] = amount
    refunded_total = Decimal("0")
    refunds = []
    by_line = {i["line_id"]: i for i in items}
    for r in p.get("refunds") or []:
        amount = sum((amount_of(t.get("amount"), "refunds.transactions.amount") for t in r.get("transactions") or []
                      if t.get("kind") == "refund" and t.get("status", "success") == "success"), Decimal("0"))
        refund_lines = []
        for rl in r.get("refund_line_items") or []:
            item = by_line.get(str(rl.get("line_item_id")))
            if item is None:
                continue
            qty = quantity(rl.get("quantity"), "refund_line_items.quantity")
            item["refunded_quantity"] = min(item.get("refunded_quantity", 0) + qty, item["quantity"])
            item["refunded_amount"] = min(item.get("refunded_amount", Decimal("0")) + amount_of(rl.get("subtotal"),
                                          "refund_line_items.subtotal"), item["paid"])
            refund_lines.append({"line_id": item["line_id"], "quantity": qty})
        refunded_total += amount
        refunds.append({"refund_id": str(r.get("id")), "amount": amount, "lines": refund_lines,
                        "reason": r.get("note"), "created_at": timestamp(r.get("created_at"), "refunds.created_at")})
    customer = p.get("customer") or {}
    addr = p.get("shipping_address") or None
    shipments = []
    for f in p.get("fulfillments") or []:
        numbers = f.get("tracking_numbers") or ([f["tracking_number"]] if f.get("tracking_number") else [])
        for number in numbers:
            shipments.append({"carrier": f.get("tracking_company") or "unknown", "tracking_number": number,
                              "status": "delivered" if f.get("shipment_status") == "delivered" else "in_transit",
                              "shipped_at": timestamp(f.get("created_at"), "fulfillments.created_at")})
    promotions = [{"kind": "coupon", "title": d.get("code") or "discount", "code": d.get("code"),
                   "amount": amount_of(d.get("amount"), "discount_codes.amount")} for d in p.get("discount_codes") or []]
    created = timestamp(need(p, "created_at"), "created_at")
    return finish({
        "order_id": order_id, "marketplace": "shopify", "status": _status(p), "currency": currency,
        "created_at": created, "updated_at": timestamp(p.get("updated_at"), "updated_at"),
        "paid_at": timestamp(p.get("processed_at"), "processed_at") if _status(p) != "unpaid" else None,
        "buyer": {"buyer_id": str(customer["id"]) if customer.get("id") else None, "email": p.get("email")
                  or customer.get("email"), "phone": p.get("phone") or customer.get("phone"),
                  "name": " ".join(x for x in (customer.get("first_name"), customer.get("last_name")) if x) or None},
        "shipping_address": addr and {"name": addr.get("name"), "phone": addr.get("phone"),
                                      "country": addr.get("country_code"), "province": addr.get("province"),
                                      "city": addr.get("city"), "line1": addr.get("address1"),
                                      "postcode": addr.get("zip")},
        "items": items, "subtotal": sum((i["unit_price"] * i["quantity"] for i in items), Decimal("0")),
        "discount_total": amount_of(p.get("total_discounts"), "total_discounts"), "shipping_fee": shipping,
        "total_paid": total, "refunded_total": min(refunded_total, total),
        "payments": [{"method": (p.get("payment_gateway_names") or ["unknown"])[0], "amount": total,
                      "status": "paid"}] if _status(p) != "unpaid" else [],
        "promotions": promotions, "shipments": shipments, "refunds": refunds,
    })
