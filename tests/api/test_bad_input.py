"""Bad input gets a JSON error with a stable code and a 4xx, and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.factories import TenantFixture


async def test_malformed_json(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/auth/login", content=b'{"email": "a@b.c", "password": ',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"


async def test_wrong_types_are_validation_errors_without_echoing_input(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/auth/login", json={"email": ["secret@example.com"], "password": 5})
    assert r.status_code == 422
    body = r.json()["error"]
    assert body["code"] == "validation_error" and body["details"]["errors"]
    assert "secret@example.com" not in r.text


async def test_invalid_utf8_body(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/auth/login", content=b'{"email": "\xff\xfe", "password": "x"}',
                        headers={"Content-Type": "application/json", "Accept-Language": "zh-CN"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_encoding"
    assert "UTF-8" in r.json()["error"]["message"]


async def test_oversize_body_is_refused_before_parsing(sqlite_url: str) -> None:
    live = LiveServer(make_settings(sqlite_url, max_body_bytes=2048)).start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            big = b'{"email": "' + b"a" * 5000 + b'", "password": "x"}'
            declared = await client.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
            assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

            async def chunks():
                for _ in range(10):
                    yield b"a" * 1000

            streamed = await client.post("/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
            assert streamed.status_code == 413
            small = await client.post("/api/v1/auth/login", json={"email": "x@y.z", "password": "nope-nope"})
            assert small.status_code == 401
    finally:
        live.stop()


@pytest.mark.parametrize("header", ["Bearer", "Bearer nonsense", "Basic abc", "Bearer kefu_key_x_y", ""])
async def test_bad_tokens(http: httpx.AsyncClient, header: str) -> None:
    r = await http.post("/api/v1/auth/logout", headers={"Authorization": header} if header else {})
    assert r.status_code == 401
    assert r.json()["error"]["code"] in {"unauthenticated", "invalid_token"}


async def test_idempotency_key_replays_the_first_response(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    body = {"email": tenant.agent.email, "password": tenant.agent.password}
    first = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": "login-1"})
    again = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": "login-1"})
    assert first.status_code == again.status_code == 200
    assert again.json()["token"] == first.json()["token"]  # the same session, not a second one
    assert again.headers.get("idempotent-replayed") == "true"
    other = await http.post("/api/v1/auth/login", json={**body, "password": "different-pass"},
                            headers={"Idempotency-Key": "login-1"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    bad = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_idempotency_key"


async def test_stored_idempotent_responses_do_not_expose_secrets(http: httpx.AsyncClient, tenant: TenantFixture,
                                                                  runtime) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from kefu.api.models import IdempotencyRecord

    body = {"email": tenant.admin.email, "password": tenant.admin.password}
    first = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": "sealed-1"})
    token = first.json()["token"]
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(IdempotencyRecord.response_body).where(
            IdempotencyRecord.key == "sealed-1"))).all()
    assert stored and all(token.encode() not in blob for blob in stored)
    replay = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": "sealed-1"})
    assert replay.json()["token"] == token


async def test_immediate_retry_never_sees_a_pending_record(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    body = {"email": tenant.agent.email, "password": tenant.agent.password}
    for i in range(15):
        key = f"race-{i}"
        first = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": key})
        again = await http.post("/api/v1/auth/login", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json()["token"] == first.json()["token"]


async def test_nul_bytes_are_refused_not_stored(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    r = await http.post("/api/v1/auth/login", content=b'{"email": "a\\u0000@b.c", "password": "x"}',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    q = await http.get("/api/v1/conversations", params={"status": "open\x00"}, headers=tenant.agent.headers)
    assert q.status_code == 422


async def test_a_backslash_u0000_written_as_text_is_fine(http: httpx.AsyncClient) -> None:
    # The characters \u0000 typed by a user arrive escaped (\\u0000): they are text, not a NUL.
    r = await http.post("/api/v1/auth/login", content=b'{"email": "a\\\\u0000@b.c", "password": "x"}',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 401
