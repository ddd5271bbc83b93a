"""WooCommerce REST API v3 ``order`` (https://woocommerce.github.io/woocommerce-rest-api-docs/#orders) → ``Order``.

Line paid = ``total`` (after coupons) + ``total_tax``; shipping = ``shipping_total`` + ``shipping_tax``.
Tracking numbers come from the Shipment Tracking extension's ``_wc_shipment_tracking_items`` meta entry.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from kefu.commerce.policies import cents
from kefu.commerce.schemas import Order
from kefu.integrations.commerce.normalizers import finish, fit_lines, invalid, money, need, quantity, timestamp

STATUS = {"pending": "unpaid", "on-hold": "unpaid", "failed": "cancelled", "processing": "paid",
          "completed": "completed", "cancelled": "cancelled", "refunded": "refunded", "trash": "cancelled"}


def normalize(p: dict[str, Any]) -> Order:
    order_id = str(need(p, "id"))
    currency = str(need(p, "currency")).upper()
    amount_of = partial(money, currency=currency)  # rounded to the currency's minor unit
    raw_status = str(need(p, "status"))
    if raw_status not in STATUS:
        raise invalid("unknown_status", field="status", value=raw_status[:40])
    lines = p.get("line_items")
    if not isinstance(lines, list) or not lines:
        raise invalid("missing_field", field="line_items")
    items, paid = [], []
    for n, li in enumerate(lines):
        where = f"line_items[{n}]."
        qty = quantity(need(li, "quantity", where), where + "quantity")
        subtotal = amount_of(li.get("subtotal"), where + "subtotal")
        total = amount_of(need(li, "total", where), where + "total")
        paid.append(total + amount_of(li.get("total_tax"), where + "total_tax"))
        unit = amount_of(li.get("price"), where + "price") if li.get("price") not in (None, "") else subtotal / qty
        items.append({"line_id": str(need(li, "id", where)), "sku": li.get("sku") or str(li.get("product_id")),
                      "title": li.get("name") or "", "quantity": qty, "unit_price": cents(unit, currency)})
    shipping = amount_of(p.get("shipping_total"), "shipping_total") + amount_of(p.get("shipping_tax"), "shipping_tax")
    total = amount_of(need(p, "total"), "total")
    for item, amount in zip(items, fit_lines(paid, shipping, total, currency), strict=True):
        item["paid"] = amount
    refunds = [{"refund_id": str(r.get("id")), "amount": abs(amount_of(r.get("total"), "refunds.total",
                                                                  allow_negative=True)),
                "reason": r.get("reason") or None} for r in p.get("refunds") or []]
    refunded = sum((r["amount"] for r in refunds), Decimal("0"))
    status = STATUS[raw_status]
    if refunded and status in ("paid", "completed"):
        status = "partially_refunded"
    shipments = []
    for meta in p.get("meta_data") or []:
        if meta.get("key") == "_wc_shipment_tracking_items" and isinstance(meta.get("value"), list):
            for t in meta["value"]:
                if t.get("tracking_number"):
                    shipments.append({"carrier": t.get("tracking_provider") or t.get("custom_tracking_provider")
                                      or "unknown", "tracking_number": str(t["tracking_number"])})
    if shipments and status == "paid":
        status = "shipped"
    billing, ship = p.get("billing") or {}, p.get("shipping") or {}
    coupons = [{"kind": "coupon", "title": c.get("code") or "coupon", "code": c.get("code"),
                "amount": amount_of(c.get("discount"), "coupon_lines.discount")} for c in p.get("coupon_lines") or []]
    paid_at = timestamp(p.get("date_paid_gmt"), "date_paid_gmt")
    return finish({
        "order_id": order_id, "marketplace": "woocommerce", "status": status, "currency": currency,
        "created_at": timestamp(need(p, "date_created_gmt"), "date_created_gmt"),
        "updated_at": timestamp(p.get("date_modified_gmt"), "date_modified_gmt"), "paid_at": paid_at,
        "buyer": {"buyer_id": str(p["customer_id"]) if p.get("customer_id") else None, "email": billing.get("email"),
                  "phone": billing.get("phone"),
                  "name": " ".join(x for x in (billing.get("first_name"), billing.get("last_name")) if x) or None},
        "shipping_address": {"name": " ".join(x for x in (ship.get("first_name"), ship.get("last_name")) if x) or None,
                             "phone": ship.get("phone") or billing.get("phone"), "country": ship.get("country") or None,
                             "province": ship.get("state") or None, "city": ship.get("city") or None,
                             "line1": ship.get("address_1") or None, "postcode": ship.get("postcode") or None},
        "items": items, "subtotal": sum((i["unit_price"] * i["quantity"] for i in items), Decimal("0")),
        "discount_total": amount_of(p.get("discount_total"), "discount_total"), "shipping_fee": shipping,
        "total_paid": total, "refunded_total": min(refunded, total),
        "payments": [{"method": p.get("payment_method") or "unknown", "amount": total, "paid_at": paid_at,
                      "transaction_id": p.get("transaction_id") or None}] if paid_at else [],
        "promotions": coupons, "shipments": shipments, "refunds": refunds,
    })
