"""Shared steps of the commerce tests (through the REST API, as a user would)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import TenantFixture


async def orders_of(http: httpx.AsyncClient, tenant: TenantFixture, **query: str) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/orders", headers=tenant.agent.headers, params={"limit": 50, **query})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def demo_order(http: httpx.AsyncClient, tenant: TenantFixture, status: str, buyer: str = "c1001",
                     **extra: Any) -> dict[str, Any]:
    """One of the demo shop's orders in ``status`` (the first customer has one of each)."""
    for view in await orders_of(http, tenant, buyer_id=buyer):
        order = view["order"]
        if order["status"] == status and all(order.get(k) == v for k, v in extra.items()):
            return view
    raise AssertionError(f"no {status} order for {buyer}")


async def detail(http: httpx.AsyncClient, tenant: TenantFixture, ref: str) -> httpx.Response:
    return await http.get(f"/api/v1/orders/{ref}", headers=tenant.agent.headers)


async def price_protected_candidate(http: httpx.AsyncClient, tenant: TenantFixture, *,
                                    exclude: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(order view, quote) of a demo order whose first line is cheaper today (price protection applies)."""
    for buyer in ("c1001", "c1002", "c1003", "c1004", "c1005", "c1006", "c1007", "c1008"):
        for view in await orders_of(http, tenant, buyer_id=buyer):
            if view["order"]["status"] not in ("delivered", "shipped", "paid") or view["id"] in exclude:
                continue
            quote = (await http.post(f"/api/v1/orders/{view['id']}/price-protection-quotes",
                                     headers=tenant.agent.headers, json={"line_id": "L1"})).json()
            if quote["eligible"]:
                return view, quote
    raise AssertionError("no demo order with a lower price today")
