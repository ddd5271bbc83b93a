"""Generic REST connector: the shop's own order system, described by configuration instead of code.

Configuration (``CommerceConnector.config``)::

    {"base_url": "https://erp.example.com/api",
     "timeout": 2.0,
     "auth": {"kind": "bearer", "token": "…"}                      # or
             {"kind": "hmac", "secret": "…", "key_id": "kefu"},    # X-Kefu-Key, X-Kefu-Timestamp, X-Kefu-Signature
     "urls": {"get_order": "/orders/{order_id}",                   # 404 = no such order
              "search": "/orders?{field}={value}",                 # field: phone|email|tracking_number|buyer_id
              "current_price": "/products/{sku}/price",            # {"price": "12.30"}
              "cancel": "/orders/{order_id}/cancel", "change_address": "/orders/{order_id}/address",
              "create_return": "/orders/{order_id}/returns", "request_refund": "/orders/{order_id}/refunds",
              "claim_price_protection": "/orders/{order_id}/price-protection"},
     "list_path": "orders",                                        # where a search answer keeps its list
     "marketplace": "erp",
     "mapping": {"order_id": "id", "status": "state", "currency": "currency", "created_at": "created",
                 "total_paid": "amount_paid", "buyer.phone": "customer.mobile",
                 "items": {"path": "lines", "fields": {"line_id": "id", "sku": "sku", "title": "name",
                                                        "quantity": "qty", "unit_price": "price", "paid": "paid"}},
                 "shipments": {"path": "parcels", "fields": {"carrier": "carrier", "tracking_number": "no"}}},
     "status_map": {"NEW": "unpaid", "PAID": "paid", "SENT": "shipped", "DONE": "delivered"}}

A mapping value is a dotted path into the source's JSON, or ``=constant``. Actions are POSTs with a JSON body
and an ``Idempotency-Key`` header; they answer the order (or ``{"order": …, "reference": "…"}``).
HMAC signature: hex HMAC-SHA256(secret, ``timestamp + "\\n" + METHOD + "\\n" + path?query + "\\n" + body``).
Outages (connection errors, timeouts, 5xx, unreadable answers) raise ``SourceUnavailable``; refusals (409/422)
raise ``Conflict("order_action_refused")`` with the source's message. Answers are parsed with exact decimals
(never float), and amounts are rounded to the order currency's minor unit (JPY 0, KWD / BHD 3, else 2 decimals).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from kefu.commerce.policies import build_item_paid, cents
from kefu.commerce.ports import ActionOutcome, SearchField, SourceUnavailable
from kefu.commerce.schemas import Address, Order, ReturnLine
from kefu.core.errors import Conflict, NotFound, ValidationFailed
from kefu.integrations.commerce.normalizers import finish, invalid, money

ACTIONS = ("cancel", "change_address", "create_return", "request_refund", "claim_price_protection")


def pick(data: Any, path: str) -> Any:
    """The value at a dotted path (``=x`` is the constant x); None when any step is missing."""
    if path.startswith("="):
        return path[1:]
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def map_order(raw: Any, mapping: dict[str, Any], *, marketplace: str, status_map: dict[str, str]) -> Order:
    """Apply the declarative mapping and complete what the source left out (subtotal, paid per line)."""
    if not isinstance(raw, dict):
        raise invalid("not_an_object")
    out: dict[str, Any] = {"marketplace": marketplace}
    for key, spec in mapping.items():
        if isinstance(spec, dict):
            rows = pick(raw, spec.get("path", key))
            if rows is None:
                continue
            if not isinstance(rows, list):
                raise invalid("not_a_list", field=key)
            out[key] = [{f: pick(row, p) for f, p in spec.get("fields", {}).items() if pick(row, p) is not None}
                        for row in rows]
        elif isinstance(spec, str):
            value = pick(raw, spec)
            if value is not None:
                _set(out, key, value)
    if "status" in out:
        out["status"] = status_map.get(str(out["status"]), out["status"])
    if "order_id" in out:
        out["order_id"] = str(out["order_id"])
    currency = str(out["currency"]).upper() if isinstance(out.get("currency"), str) else None
    items = out.get("items") or []
    for n, item in enumerate(items):
        item.setdefault("line_id", f"L{n + 1}")
        for field in ("unit_price", "paid", "refunded_amount"):
            if field in item:
                item[field] = money(item[field], f"items[{n}].{field}", currency=currency)
    for field in ("total_paid", "shipping_fee", "discount_total", "refunded_total", "subtotal"):
        if field in out:
            out[field] = money(out[field], field, currency=currency)
    if items and all("unit_price" in i and "quantity" in i for i in items) and not all("paid" in i for i in items):
        try:
            discount = money(out.get("discount_total"), "discount_total", currency=currency)
            paid = build_item_paid([(i["unit_price"], int(i["quantity"]), Decimal("0")) for i in items], discount,
                                   currency)
        except (TypeError, ValueError):
            raise invalid("invalid_quantity", field="items") from None
        for item, amount in zip(items, paid, strict=True):
            item["paid"] = amount
    if items and all("unit_price" in i and "quantity" in i for i in items):
        try:
            out.setdefault("subtotal", sum((cents(i["unit_price"] * int(i["quantity"]), currency) for i in items),
                                           Decimal("0")))
        except (TypeError, ValueError):
            raise invalid("invalid_quantity", field="items") from None
    if "total_paid" not in out and items and all("paid" in i for i in items):
        out["total_paid"] = sum((i["paid"] for i in items), Decimal("0")) + money(out.get("shipping_fee"), "shipping_fee",
                                                                                   currency=currency)
    return finish(out)


def _check_config(config: dict[str, Any]) -> None:
    """Refuse a configuration that cannot work, field by field (``invalid_connector_config``)."""
    def bad(field: str) -> ValidationFailed:
        return ValidationFailed("invalid_connector_config", details={"field": field})

    base = config.get("base_url")
    if not isinstance(base, str) or not base.startswith(("http://", "https://")) or len(base) > 500:
        raise bad("base_url")
    timeout = config.get("timeout", 2.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0.05 <= timeout <= 30:
        raise bad("timeout")
    for field in ("urls", "mapping", "status_map", "auth"):
        if not isinstance(config.get(field) or {}, dict):
            raise bad(field)
    urls = config.get("urls") or {}
    if not all(isinstance(k, str) and isinstance(v, str) and v.startswith("/") for k, v in urls.items()):
        raise bad("urls")
    auth = config.get("auth") or {}
    if auth and auth.get("kind") not in ("bearer", "hmac"):
        raise bad("auth.kind")
    if not all(isinstance(v, (str, dict)) for v in (config.get("mapping") or {}).values()):
        raise bad("mapping")


class RestOrderSource:
    """``OrderSource`` over HTTP, shaped by the connector's configuration."""

    def __init__(self, config: dict[str, Any], *, client: httpx.AsyncClient | None = None) -> None:
        _check_config(config)
        self.config = config
        self.marketplace = str(config.get("marketplace") or "shop")
        self.urls: dict[str, str] = {"get_order": "/orders/{order_id}", "search": "/orders?{field}={value}",
                                     **{a: f"/orders/{{order_id}}/{a.replace('_', '-')}" for a in ACTIONS},
                                     **(config.get("urls") or {})}
        self.mapping: dict[str, Any] = config.get("mapping") or {}
        self.status_map: dict[str, str] = config.get("status_map") or {}
        self.auth: dict[str, Any] = config.get("auth") or {}
        self.client = client or httpx.AsyncClient(base_url=config["base_url"].rstrip("/"),
                                                  timeout=float(config.get("timeout", 2.0)))

    def _headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        kind = self.auth.get("kind")
        if kind == "bearer":
            return {"Authorization": f"Bearer {self.auth.get('token', '')}"}
        if kind == "hmac":
            ts = str(int(time.time()))
            message = f"{ts}\n{method}\n{url}\n".encode() + body
            signature = hmac.new(str(self.auth.get("secret", "")).encode(), message, hashlib.sha256).hexdigest()
            return {"X-Kefu-Key": str(self.auth.get("key_id", "kefu")), "X-Kefu-Timestamp": ts,
                    "X-Kefu-Signature": signature}
        return {}

    async def _request(self, method: str, url: str, payload: dict[str, Any] | None = None,
                       idempotency_key: str | None = None) -> Any:
        body = json.dumps(payload, default=str).encode() if payload is not None else b""
        headers = {"Accept": "application/json", **self._headers(method, url, body)}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self.client.request(method, url, content=body or None, headers=headers)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise SourceUnavailable(type(exc).__name__) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            raise SourceUnavailable(f"HTTP {response.status_code}")
        try:
            # Exact numbers: a JSON amount such as 12345678.91 must not pass through a binary float.
            data = json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise SourceUnavailable("unreadable answer") from exc
        if response.status_code >= 400:
            message = str(data.get("message") or data.get("error") or "")[:200] if isinstance(data, dict) else ""
            raise Conflict("order_action_refused", details={"source_status": response.status_code,
                                                             "source_message": message})
        return data

    def _order(self, raw: Any) -> Order:
        try:
            return map_order(raw, self.mapping, marketplace=self.marketplace, status_map=self.status_map)
        except ValidationFailed as exc:
            # An answer we cannot read is an outage of the source, not the caller's fault.
            raise SourceUnavailable(f"unmappable order: {exc.details}") from exc
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a mapping that does not fit the data
            raise SourceUnavailable(f"unmappable order: {type(exc).__name__}") from exc

    def _url(self, name: str, **params: str) -> str:
        try:
            return self.urls[name].format(**{k: quote(str(v), safe="") for k, v in params.items()})
        except (KeyError, IndexError, ValueError) as exc:  # a template naming a parameter we do not have
            raise SourceUnavailable(f"bad URL template for {name}") from exc

    async def get_order(self, order_id: str) -> Order | None:
        raw = await self._request("GET", self._url("get_order", order_id=order_id))
        return None if raw is None else self._order(raw)

    async def search(self, field: SearchField, value: str, *, limit: int = 50) -> list[Order]:
        if field == "order_id":
            found = await self.get_order(value)
            return [found] if found else []
        raw = await self._request("GET", self._url("search", field=field, value=value))
        rows = pick(raw, self.config.get("list_path", "orders")) if isinstance(raw, dict) else raw
        if raw is None:
            return []
        if not isinstance(rows, list):
            raise SourceUnavailable("search answer has no list")
        orders = [self._order(r) for r in rows[:limit]]
        return sorted(orders, key=lambda o: o.created_at, reverse=True)

    async def current_price(self, sku: str) -> Decimal | None:
        if "current_price" not in self.urls:
            return None
        raw = await self._request("GET", self._url("current_price", sku=sku))
        value = pick(raw, "price") if isinstance(raw, dict) else None
        return money(value, "price") if value is not None else None

    async def _act(self, name: str, order_id: str, payload: dict[str, Any], key: str) -> ActionOutcome:
        raw = await self._request("POST", self._url(name, order_id=order_id), {**payload, "idempotency_key": key}, key)
        if raw is None:
            raise NotFound("order_not_found")
        inner = raw.get("order") if isinstance(raw, dict) and isinstance(raw.get("order"), dict) else raw
        ref = raw.get("reference") if isinstance(raw, dict) else None
        return ActionOutcome(self._order(inner), str(ref) if ref else None)

    async def cancel(self, order_id: str, *, reason: str, idempotency_key: str) -> ActionOutcome:
        return await self._act("cancel", order_id, {"reason": reason}, idempotency_key)

    async def change_address(self, order_id: str, *, address: Address, idempotency_key: str) -> ActionOutcome:
        return await self._act("change_address", order_id, {"address": address.model_dump()}, idempotency_key)

    async def create_return(self, order_id: str, *, kind: str, reason: str, lines: list[ReturnLine],
                            idempotency_key: str) -> ActionOutcome:
        return await self._act("create_return", order_id, {"kind": kind, "reason": reason,
                                                           "lines": [ln.model_dump() for ln in lines]}, idempotency_key)

    async def request_refund(self, order_id: str, *, amount: Decimal, shipping: Decimal, lines: list[ReturnLine],
                             reason: str, idempotency_key: str) -> ActionOutcome:
        return await self._act("request_refund", order_id, {
            "amount": format(amount + shipping, "f"), "shipping": format(shipping, "f"), "reason": reason,
            "lines": [ln.model_dump() for ln in lines]}, idempotency_key)

    async def claim_price_protection(self, order_id: str, *, line_id: str, amount: Decimal,
                                     idempotency_key: str) -> ActionOutcome:
        return await self._act("claim_price_protection", order_id, {"line_id": line_id, "amount": format(amount, "f")},
                               idempotency_key)
