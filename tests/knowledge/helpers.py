"""Shared helpers for the knowledge tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import TenantFixture


async def create_entry(http: httpx.AsyncClient, tenant: TenantFixture, **fields: Any) -> dict[str, Any]:
    body = {"language": "zh", "publish": True, **fields}
    response = await http.post("/api/v1/kb-entries", headers=tenant.admin.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def search(http: httpx.AsyncClient, tenant: TenantFixture, q: str, **params: Any) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/kb-search", headers=tenant.agent.headers, params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]
