"""A shop's own order system for the REST connector tests: a real HTTP server (uvicorn in a thread).

It speaks its own JSON dialect (``state``, ``lines``, ``parcels``…), which the connector maps declaratively,
checks bearer or HMAC authentication, and honours ``Idempotency-Key`` on actions. ``stop()`` shuts it down.

``FakeShopProcess`` runs the same system in a process of its own (``python -m tests.commerce.fake_shop``), so
a test can kill it with SIGKILL mid-run, as a crash or a pulled cable would, and start it again on the same
port. Its ``/_control/*`` routes (test only) make it slow or change an order behind Kefu's back.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
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
        # Amounts as JSON numbers (Decimal here, written out digit for digit by ExactJSON).
        "E1003": {"id": "E1003", "state": "PAID", "currency": "CNY", "created": "2026-11-21T03:00:00Z", "rev": 1,
                  "paid": "2026-11-21T03:05:00Z", "amount_paid": Decimal("1234567890123456.78"), "shipping": 0,
                  "customer": {"id": "u-88", "mobile": "+8613900000088", "email": "erp88@example.com"},
                  "lines": [{"id": "A", "sku": "ERP-YACHT", "name": "游艇 Yacht", "qty": 1,
                             "price": Decimal("1234567890123456.78")}]},
        "E1004": {"id": "E1004", "state": "PAID", "currency": "JPY", "created": "2026-11-21T04:00:00Z", "rev": 1,
                  "paid": "2026-11-21T04:05:00Z", "amount_paid": 6340, "shipping": 0, "discount": 100,
                  "customer": {"id": "u-99", "mobile": "+819000000099", "email": "erp99@example.com"},
                  "lines": [{"id": "A", "sku": "ERP-TEA", "name": "抹茶 Matcha", "qty": 3, "price": 1980},
                            {"id": "B", "sku": "ERP-CUP", "name": "茶碗 Cup", "qty": 1, "price": 500}]},
        "E1002": {"id": "E1002", "state": "PAID", "currency": "CNY", "created": "2026-11-21T02:00:00Z",
                  "rev": 1, "paid": "2026-11-21T02:05:00Z", "amount_paid": "99.00", "shipping": "0",
                  "customer": {"id": "u-77", "mobile": "+8613900000077", "email": "erp77@example.com"},
                  "lines": [{"id": "A", "sku": "ERP-CAP", "name": "帽子 Cap", "qty": 1, "price": "99.00"}]},
    }


ROOT = Path(__file__).resolve().parents[2]


def connector_config(url: str, auth: str) -> dict[str, Any]:
    """The REST connector configuration Kefu needs for this order system."""
    credentials = {"kind": "bearer", "token": TOKEN} if auth == "bearer" else {
        "kind": "hmac", "secret": HMAC_SECRET, "key_id": "kefu"}
    return {"base_url": url, "timeout": 1.0, "auth": credentials, "marketplace": "erp", "mapping": MAPPING,
            "status_map": STATUS_MAP,
            "urls": {"get_order": "/orders/{order_id}", "search": "/orders?{field}={value}",
                     "current_price": "/products/{sku}/price", "request_refund": "/orders/{order_id}/refund",
                     "cancel": "/orders/{order_id}/cancel"}}


class ExactJSON(JSONResponse):
    """JSON with ``Decimal`` written as a number, digit for digit (as an order system in Java or Go would)."""

    def render(self, content: Any) -> bytes:
        def mark(value: Any) -> str:
            if isinstance(value, Decimal):
                return f"__exact__{value}__exact__"
            raise TypeError(type(value).__name__)

        text = json.dumps(content, default=mark, ensure_ascii=False, separators=(",", ":"))
        return re.sub(r'"__exact__(-?[0-9.]+)__exact__"', r"\1", text).encode()


class FakeShop:
    def __init__(self, *, auth: str = "bearer", port: int = 0, start: bool = True) -> None:
        self.auth = auth
        self.orders = sample_orders()
        self.done: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.delay = 0.0  # seconds every authorised call waits before answering (a slow order system)
        self.app = Starlette(routes=[
            Route("/_control/ping", self.ping),
            Route("/_control/delay", self.set_delay, methods=["POST"]),
            Route("/_control/calls", self.get_calls),
            Route("/_control/orders/{order_id}", self.patch_order, methods=["PATCH"]),
            Route("/api/orders/{order_id}", self.get_order),
            Route("/api/orders", self.search),
            Route("/api/products/{sku}/price", self.price),
            Route("/api/orders/{order_id}/refund", self.refund, methods=["POST"]),
            Route("/api/orders/{order_id}/cancel", self.cancel, methods=["POST"]),
        ])
        self.port = port
        if start:
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
        return connector_config(self.url, self.auth)

    async def ping(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "pid": os.getpid()})

    async def get_calls(self, request: Request) -> JSONResponse:
        return JSONResponse({"calls": self.calls})

    async def set_delay(self, request: Request) -> JSONResponse:
        self.delay = float((await request.json())["seconds"])
        return JSONResponse({"delay": self.delay})

    async def patch_order(self, request: Request) -> JSONResponse:
        order = self.orders[request.path_params["order_id"]]
        order.update(await request.json())
        return JSONResponse(order)

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
        if self.delay:
            await asyncio.sleep(self.delay)
        if not await self._authorised(request, body):
            return JSONResponse({"error": "unauthorised"}, status_code=401), body
        return None, body

    async def get_order(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        if denied:
            return denied
        order = self.orders.get(request.path_params["order_id"])
        return ExactJSON(order) if order else JSONResponse({"error": "not found"}, status_code=404)

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
        return ExactJSON({"orders": found})

    async def price(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        return denied or JSONResponse({"price": "150.00"})

    async def refund(self, request: Request) -> JSONResponse:
        denied, body = await self._guard(request)
        if denied:
            return denied
        key = request.headers["idempotency-key"]
        if key in self.done:
            return ExactJSON(self.done[key])
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
        return ExactJSON(answer)

    async def cancel(self, request: Request) -> JSONResponse:
        denied, _ = await self._guard(request)
        if denied:
            return denied
        order = self.orders[request.path_params["order_id"]]
        order["state"], order["rev"] = "REFUNDED", order["rev"] + 1
        order["refunded"] = order["amount_paid"]
        return ExactJSON(order)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeShopProcess:
    """The fake order system in a child process: ``kill()`` is SIGKILL, ``restart()`` brings it back."""

    def __init__(self, *, auth: str = "bearer") -> None:
        self.auth = auth
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restart()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def config(self) -> dict[str, Any]:
        return connector_config(self.url, self.auth)

    def restart(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.commerce.fake_shop", "--port", str(self.port),
                                         "--auth", self.auth], cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("fake shop process exited during start-up")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/_control/ping", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("fake shop process did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye; open connections are reset, new ones refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    stop = kill

    def set_delay(self, seconds: float) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/_control/delay", json={"seconds": seconds}, timeout=5)

    def calls(self) -> list[str]:
        """Every call that reached the order system (method and path), in order."""
        return list(httpx.get(f"http://127.0.0.1:{self.port}/_control/calls", timeout=5).json()["calls"])

    def patch_order(self, order_id: str, changes: dict[str, Any]) -> None:
        httpx.patch(f"http://127.0.0.1:{self.port}/_control/orders/{order_id}", json=changes, timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description="The fake order system of the commerce tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth", choices=("bearer", "hmac"), default="bearer")
    args = parser.parse_args()
    shop = FakeShop(auth=args.auth, port=args.port, start=False)
    uvicorn.run(shop.app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
