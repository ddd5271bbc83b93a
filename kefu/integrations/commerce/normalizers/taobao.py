"""Taobao / Tmall TOP ``trade`` as returned by ``taobao.trade.fullinfo.get`` → ``Order``.

Times are Beijing time without offset; money is CNY yuan strings. Line paid = ``divide_order_fee`` (the
sub-order's share after every order-level promotion) when present, else ``payment``; shipping = ``post_fee``;
total paid = the trade's ``payment``. Sub-orders with ``refund_status`` SUCCESS count as refunded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kefu.commerce.schemas import Order
from kefu.integrations.commerce.normalizers import CHINA, finish, fit_lines, invalid, money, need, quantity, timestamp

STATUS = {"TRADE_NO_CREATE_PAY": "unpaid", "WAIT_BUYER_PAY": "unpaid", "PAY_PENDING": "unpaid",
          "WAIT_PRE_AUTH_CONFIRM": "unpaid", "WAIT_SELLER_SEND_GOODS": "paid", "SELLER_CONSIGNED_PART": "shipped",
          "WAIT_BUYER_CONFIRM_GOODS": "shipped", "TRADE_BUYER_SIGNED": "delivered", "TRADE_FINISHED": "completed",
          "TRADE_CLOSED": "refunded", "TRADE_CLOSED_BY_TAOBAO": "cancelled"}


def normalize(p: dict[str, Any]) -> Order:
    tid = str(need(p, "tid"))
    raw_status = str(need(p, "status"))
    if raw_status not in STATUS:
        raise invalid("unknown_status", field="status", value=raw_status[:40])
    subs = (p.get("orders") or {}).get("order") if isinstance(p.get("orders"), dict) else p.get("orders")
    if not isinstance(subs, list) or not subs:
        raise invalid("missing_field", field="orders.order")
    items, paid, shipments, refunded = [], [], {}, Decimal("0")
    for n, o in enumerate(subs):
        where = f"orders.order[{n}]."
        qty = quantity(need(o, "num", where), where + "num")
        line_paid = money(o.get("divide_order_fee") or need(o, "payment", where), where + "payment")
        paid.append(line_paid)
        item = {"line_id": str(need(o, "oid", where)), "sku": str(o.get("outer_sku_id") or o.get("sku_id")
                                                                 or o.get("num_iid") or o["oid"]),
                "title": str(need(o, "title", where)), "quantity": qty,
                "unit_price": money(need(o, "price", where), where + "price")}
        if o.get("refund_status") == "SUCCESS":
            item["refunded_quantity"] = qty
            item["_refunded"] = True
        items.append(item)
        if o.get("invoice_no"):
            shipments.setdefault(str(o["invoice_no"]), {"carrier": o.get("logistics_company") or "unknown",
                                                        "tracking_number": str(o["invoice_no"]),
                                                        "shipped_at": timestamp(o.get("consign_time"),
                                                                                where + "consign_time", tz=CHINA)})
    shipping = money(p.get("post_fee"), "post_fee")
    total = money(need(p, "payment"), "payment")
    for item, amount in zip(items, fit_lines(paid, shipping, total), strict=True):
        item["paid"] = amount
        if item.pop("_refunded", False):
            item["refunded_amount"] = amount
            refunded += amount
    status = STATUS[raw_status]
    if raw_status == "TRADE_CLOSED" and not p.get("pay_time"):
        status = "cancelled"
    elif refunded and status not in ("refunded", "cancelled"):
        status = "partially_refunded"
    promotions = []
    for d in (p.get("promotion_details") or {}).get("promotion_detail") or []:
        name = str(d.get("promotion_name") or "")
        promotions.append({"kind": "spend_save" if "满" in name else "coupon" if "券" in name else "item_discount",
                           "title": name or "promotion", "amount": money(d.get("discount_fee"), "discount_fee")})
    paid_at = timestamp(p.get("pay_time"), "pay_time", tz=CHINA)
    return finish({
        "order_id": tid, "marketplace": "taobao", "status": status, "currency": "CNY",
        "sale_type": "pre_sale" if p.get("type") == "step" else "normal",
        "created_at": timestamp(need(p, "created"), "created", tz=CHINA),
        "updated_at": timestamp(p.get("modified"), "modified", tz=CHINA), "paid_at": paid_at,
        "buyer": {"buyer_id": p.get("buyer_open_uid") or p.get("buyer_nick"), "name": p.get("buyer_nick"),
                  "phone": p.get("receiver_mobile")},
        "shipping_address": {"name": p.get("receiver_name"), "phone": p.get("receiver_mobile") or p.get("receiver_phone"),
                             "country": "CN", "province": p.get("receiver_state"), "city": p.get("receiver_city"),
                             "district": p.get("receiver_district"), "line1": p.get("receiver_address"),
                             "postcode": p.get("receiver_zip")},
        "items": items, "subtotal": sum((i["unit_price"] * i["quantity"] for i in items), Decimal("0")),
        "discount_total": money(p.get("discount_fee"), "discount_fee"), "shipping_fee": shipping,
        "total_paid": total, "refunded_total": refunded,
        "payments": [{"method": "alipay", "amount": total, "paid_at": paid_at,
                      "transaction_id": p.get("alipay_no")}] if paid_at else [],
        "promotions": promotions, "shipments": list(shipments.values()),
    })
