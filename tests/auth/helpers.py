"""Small HTTP helpers shared by the auth and audit tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


async def audit_entries(http: httpx.AsyncClient, headers: dict[str, str], **filters: Any) -> list[dict[str, Any]]:
    """Every audit entry of the caller's tenant matching ``filters``, walking all pages."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200, **filters}
    while True:
        r = await http.get("/api/v1/audit-entries", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["data"])
        if not page["next_cursor"]:
            return out
        params["cursor"] = page["next_cursor"]


async def create_user(http: httpx.AsyncClient, admin_headers: dict[str, str], *, role: str = "agent",
                      password: str = "a-long-initial-password", **extra: Any) -> dict[str, Any]:
    body = {"email": unique_email(role), "display_name": f"{role} 小美", "role": role, "password": password, **extra}
    r = await http.post("/api/v1/users", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    return {**r.json(), "password": password}


async def login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def create_key(http: httpx.AsyncClient, admin_headers: dict[str, str], scopes: list[str],
                     **extra: Any) -> dict[str, Any]:
    r = await http.post("/api/v1/api-keys", json={"name": "integration", "scopes": scopes, **extra},
                        headers=admin_headers)
    assert r.status_code == 201, r.text
    return r.json()
