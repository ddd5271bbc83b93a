"""Logs are JSON lines with the request id, and carry no message bodies or personal data."""

from __future__ import annotations

import io
import json
import logging

import httpx

from kefu.core.logging import JsonFormatter
from tests.factories import TenantFixture


async def test_request_logs_are_json_with_request_id_and_no_pii(http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kefu")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        r = await http.post("/api/v1/auth/login", json={"email": tenant.agent.email, "password": "wrong-password-1"},
                            headers={"X-Request-ID": "req-log-test-1"})
        assert r.status_code == 401
        logging.getLogger("kefu.test").warning("customer wrote from %s", "li.lei@example.com 13912345678")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    request_lines = [entry for entry in lines if entry.get("request_id") == "req-log-test-1"]
    assert request_lines and request_lines[-1]["route"] == "/api/v1/auth/login" and request_lines[-1]["status"] == 401
    text = stream.getvalue()
    assert tenant.agent.email not in text and "wrong-password-1" not in text
    assert "li.lei@example.com" not in text and "13912345678" not in text and "139****5678" in text
