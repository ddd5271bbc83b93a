"""Tenant A's commerce objects for the isolation walker: a connector of its own and one of its orders.

Order answers carry their age (``freshness``), which moves on its own, so the snapshot checks the connector;
the walker still proves every order endpoint answers B exactly as for a missing id.
"""

from __future__ import annotations

import httpx

from tests.factories import TenantFixture


async def objects_of_a(http: httpx.AsyncClient, tenant: TenantFixture, ids: dict[str, str]) -> dict[str, str]:
    connector = await http.post("/api/v1/commerce/connectors", headers=tenant.admin.headers,
                                json={"name": "A's demo shop", "kind": "demo_shop"})
    assert connector.status_code == 201, connector.text
    found = await http.get("/api/v1/orders", headers=tenant.agent.headers, params={"buyer_id": "c1001"})
    assert found.status_code == 200, found.text
    order = next(v for v in found.json()["data"] if v["order"]["status"] == "delivered")
    return {"order_id": order["id"], "connector_id": connector.json()["id"]}


def snapshot_paths(ids: dict[str, str]) -> list[str]:
    return [f"/api/v1/commerce/connectors/{ids['connector_id']}"]
