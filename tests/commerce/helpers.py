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
