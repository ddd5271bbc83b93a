"""The server answers, errors have the documented shape, and login works."""

from __future__ import annotations

import httpx

from tests.factories import TenantFixture


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"


async def test_unknown_route_error_shape_in_both_languages(http: httpx.AsyncClient) -> None:
    en = await http.get("/api/v1/nope", headers={"Accept-Language": "en-US,en;q=0.9"})
    zh = await http.get("/api/v1/nope", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert en.status_code == zh.status_code == 404
    assert en.json()["error"]["code"] == zh.json()["error"]["code"] == "route_not_found"
    assert en.json()["error"]["message"] != zh.json()["error"]["message"]
    assert en.json()["error"]["request_id"] == en.headers["x-request-id"]


async def test_login_with_password(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    ok = await http.post("/api/v1/auth/login", json={"email": tenant.agent.email, "password": tenant.agent.password})
    assert ok.status_code == 200, ok.text
    assert ok.json()["tenant_id"] == tenant.id and ok.json()["role"] == "agent"
    bad = await http.post("/api/v1/auth/login", json={"email": tenant.agent.email, "password": "wrong-password"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_credentials"
