"""A shop's own order system for the REST connector tests: a real HTTP server (uvicorn in a thread).

It speaks its own JSON dialect (``state``, ``lines``, ``parcels``…), which the connector maps declaratively,
checks bearer or HMAC authentication, and honours ``Idempotency-Key`` on actions. ``stop()`` kills it mid-run.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import socket
import threading
import time
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "erp-token-123"
HMAC_SECRET = "erp-hmac-secret"

MAPPING = {
    "order_id": "id", "status": "state", "currency": "currency", "created_at": "created",
    "updated_at": "modified", "source_version": "rev", "paid_at": "paid", "total_paid": "amount_paid",
    "shipping_fee": "shipping", "discount_total": "discount", "buyer.buyer_id": "customer.id",
    "buyer.phone": "customer.mobile", "buyer.email": "customer.email", "refunded_total": "refunded",
    "items": {"path": "lines", "fields": {"line_id": "id", "sku": "sku", "title": "name", "quantity": "qty",
                                          "unit_price": "price", "category": "cat", "refunded_quantity": "refunded_qty",
                                          "refunded_amount": "refunded_amount"}},
    "shipments": {"path": "parcels", "fields": {"carrier": "carrier", "tracking_number": "no", "status": "status"}},
}
STATUS_MAP = {"NEW": "unpaid", "PAID": "paid", "SENT": "shipped", "DONE": "delivered", "REFUNDED": "refunded",
              "PART_REFUNDED": "partially_refunded"}


def sample_orders() -> dict[str, dict[str, Any]]:
    return {
        "E1001": {"id": "E1001", "state": "DONE", "currency": "CNY", "created": "2026-11-18T02:00:00Z",
                  "modified": "2026-11-20T02:00:00Z", "rev": 3, "paid": "2026-11-18T02:05:00Z",
                  "amount_paid": "270.00", "shipping": "0", "discount": "30.00", "refunded": "0",
                  "customer": {"id": "u-77", "mobile": "+8613900000077", "email": "erp77@example.com"},
                  "lines": [{"id": "A", "sku": "ERP-SHOE", "name": "跑鞋 Running shoes", "qty": 1, "price": "200.00",
                             "cat": "apparel"},
                            {"id": "B", "sku": "ERP-SOCK", "name": "袜子 Socks", "qty": 2, "price": "50.00",
                             "cat": "apparel"}],
                  "parcels": [{"carrier": "SF", "no": "SF8800000001", "status": "delivered"}]},
        "E1002": {"id": "E1002", "state": "PAID", "currency": "CNY", "created": "2026-11-21T02:00:00Z",
                  "rev": 1, "paid": "2026-11-21T02:05:00Z", "amount_paid": "99.00", "shipping": "0",
                  "customer": {"id": "u-77", "mobile": "+8613900000077", "email": "erp77@example.com"},
                  "lines": [{"id": "A", "sku": "ERP-CAP", "name": "帽子 Cap", "qty": 1, "price": "99.00"}]},
    }


class FakeShop:
    def __init__(self, *, auth: str = "bearer", port: int = 0) -> None:
        self.auth = auth
        self.orders = sample_orders()
        self.done: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.app = Starlette(routes=[
            Route("/api/orders/{order_id}", self.get_order),
            Route("/api/orders", self.search),
            Route("/api/products/{sku}/price", self.price),
            Route("/api/orders/{order_id}/refund", self.refund, methods=["POST"]),
            Route("/api/orders/{order_id}/cancel", self.cancel, methods=["POST"]),
        ])
        self.port = port
        self._start()

    def _start(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return
            time.sleep(0.01)
        raise RuntimeError("fake shop did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def restart(self) -> None:
        self._start()

    def config(self) -> dict[str, Any]:
        auth = {"kind": "bearer", "token": TOKEN} if self.auth == "bearer" else {
            "kind": "hmac", "secret": HMAC_SECRET, "key_id": "kefu"}
        return {"base_url": self.url, "timeout": 1.0, "auth": auth, "marketplace": "erp", "mapping": MAPPING,
                "status_map": STATUS_MAP,
                "urls": {"get_order": "/orders/{order_id}", "search": "/orders?{field}={value}",
                         "current_price": "/products/{sku}/price", "request_refund": "/orders/{order_id}/refund",
                         "cancel": "/orders/{order_id}/cancel"}}

    async def _authorised(self, request: Request, body: bytes) -> bool:
        if self.auth == "bearer":
            return request.headers.get("authorization") == f"Bearer {TOKEN}"
        ts = request.headers.get("x-kefu-timestamp", "")
        target = request.url.path.removeprefix("/api") + (f"?{request.url.query}" if request.url.query else "")
        message = f"{ts}\n{request.method}\n{target}\n".encode() + body
        expected = hmac.new(HMAC_SECRET.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, request.headers.get("x-kefu-signature", "")) and \
            abs(time.time() - int(ts or 0)) < 300

    async def _guard(self, request: Request) -> tuple[JSONResponse | None, bytes]:
        body = await request.body()
        self.calls.append(f"{request.method} {request.url.path}")
        if not await self._authorised(request, body):
            return JSONResponse({"error": "unauthorised"}, status_code=401), body
        return None, body

    async def get_order(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        if denied:
            return denied
        order = self.orders.get(request.path_params["order_id"])
        return JSONResponse(order) if order else JSONResponse({"error": "not found"}, status_code=404)

    async def search(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        if denied:
            return denied
        (field, value), = request.query_params.items()
        path = {"phone": ("customer", "mobile"), "email": ("customer", "email"), "buyer_id": ("customer", "id")}
        found = []
        for order in self.orders.values():
            if field == "tracking_number":
                hit = any(p["no"] == value for p in order.get("parcels", []))
            else:
                a, b = path[field]
                hit = order[a][b] == value
            if hit:
                found.append(order)
        return JSONResponse({"orders": found})

    async def price(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        return denied or JSONResponse({"price": "150.00"})

    async def refund(self, request: Request) -> JSONResponse:
        denied, body = await self._guard(request)
        if denied:
            return denied
        key = request.headers["idempotency-key"]
        if key in self.done:
            return JSONResponse(self.done[key])
        data = json.loads(body)
        order = self.orders[request.path_params["order_id"]]
        amount = Decimal(data["amount"])
        left = Decimal(order["amount_paid"]) - Decimal(order.get("refunded", "0"))
        if amount > left:
            return JSONResponse({"message": "too much"}, status_code=409)
        for line in data["lines"]:
            row = next(r for r in order["lines"] if r["id"] == line["line_id"])
            row["refunded_qty"] = row.get("refunded_qty", 0) + line["quantity"]
        order["refunded"] = str(Decimal(order.get("refunded", "0")) + amount)
        order["state"] = "REFUNDED" if Decimal(order["refunded"]) >= Decimal(order["amount_paid"]) else "PART_REFUNDED"
        order["rev"] += 1
        answer = {"order": copy.deepcopy(order), "reference": f"R-{len(self.done) + 1}"}
        self.done[key] = answer
        return JSONResponse(answer)

    async def cancel(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        if denied:
            return denied
        order = self.orders[request.path_params["order_id"]]
        order["state"], order["rev"] = "REFUNDED", order["rev"] + 1
        order["refunded"] = order["amount_paid"]
        return JSONResponse(order)
