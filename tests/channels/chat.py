"""Small HTTP helpers for tests that act as a widget customer or an agent (no mocks: real server, real API)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from kefu.channels.identity import make_identity_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_session(http: httpx.AsyncClient, inbox_id: str, **fields: Any) -> dict[str, Any]:
    response = await http.post("/api/v1/widget/sessions", json={"inbox_id": inbox_id, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def identity_token(secret: str, customer_id: str) -> str:
    return make_identity_token(secret, customer_id, nonce=uuid.uuid4().hex)


async def customer_says(http: httpx.AsyncClient, visitor_token: str, body: str,
                        client_message_id: str | None = None) -> dict[str, Any]:
    response = await http.post("/api/v1/widget/messages", headers=bearer(visitor_token),
                               json={"body": body, "client_message_id": client_message_id or uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return response.json()


async def agent_says(http: httpx.AsyncClient, headers: dict[str, str], conversation_id: str, body: str,
                     *, private: bool = False) -> dict[str, Any]:
    response = await http.post(f"/api/v1/conversations/{conversation_id}/messages", headers=headers,
                               json={"body": body, "private": private})
    assert response.status_code == 201, response.text
    return response.json()


async def widget_history(http: httpx.AsyncClient, visitor_token: str, **params: Any) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/widget/messages", headers=bearer(visitor_token), params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def all_contacts(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/contacts", headers=headers, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["data"]
