"""Incoming order / shipment webhooks: signature check and parsing into a canonical order.

Envelope (any connector)::

    POST /api/v1/commerce/webhooks?connector_id=ccn_…
    Kefu-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(webhook_secret, t + "." + raw body)>
    {"id": "evt_123", "type": "order.updated" | "order.created" | "shipment.updated",
     "created_at": "2026-11-22T08:00:00Z", "data": {"order": <order in the connector's webhook_format>}}

The signature scheme is the one Kefu uses for its own outgoing webhooks (docs/api.md), with a five-minute
tolerance against replays; the event id makes deliveries idempotent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kefu.commerce.schemas import Order
from kefu.core.errors import DomainError, ValidationFailed
from kefu.integrations.commerce.normalizers import normalize

TOLERANCE_SECONDS = 300
TYPES = ("order.created", "order.updated", "shipment.updated")


class InvalidSignature(DomainError):
    code = "invalid_webhook_signature"
    status = 401


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Kefu-Signature`` header value for ``body`` (used by tests and by senders we give the secret to)."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify(secret: str | None, header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Raise ``InvalidSignature`` unless the header signs this body with the secret, recently."""
    if not secret or not header:
        raise InvalidSignature()
    parts: dict[str, list[str]] = {}
    for piece in header.split(","):
        key, _, value = piece.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        ts = int(parts.get("t", [""])[0])
    except ValueError:
        raise InvalidSignature() from None
    if abs((now or time.time()) - ts) > TOLERANCE_SECONDS:
        raise InvalidSignature(details={"reason": "timestamp_out_of_tolerance"})
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise InvalidSignature()


@dataclass
class WebhookEvent:
    event_id: str
    type: str
    payload: dict[str, Any]
    order: Order


def parse(body: bytes, *, fmt: str, mapper: Any = None) -> WebhookEvent:
    """Parse a verified body; bad input raises ``invalid_webhook_payload`` / ``invalid_order_payload``."""
    try:
        # Money is read exactly (parse_float=Decimal): 12345678.91 stays 12345678.91, never a binary float.
        payload = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("invalid_webhook_payload", details={"reason": "not_json"}) from None
    if not isinstance(payload, dict):
        raise ValidationFailed("invalid_webhook_payload", details={"reason": "not_an_object"})
    event_id, kind, data = payload.get("id"), payload.get("type"), payload.get("data")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        raise ValidationFailed("invalid_webhook_payload", details={"reason": "missing_field", "field": "id"})
    if kind not in TYPES:
        raise ValidationFailed("invalid_webhook_payload", details={"reason": "unknown_type", "known": list(TYPES)})
    if not isinstance(data, dict) or not isinstance(data.get("order"), dict):
        raise ValidationFailed("invalid_webhook_payload", details={"reason": "missing_field", "field": "data.order"})
    order = mapper(data["order"]) if fmt == "mapped" and mapper is not None else normalize(
        "canonical" if fmt == "mapped" else fmt, data["order"])
    # The stored copy keeps JSON numbers as numbers (the JSON column cannot hold Decimal); only the order, read
    # above, carries money.
    return WebhookEvent(event_id, kind, json.loads(body), order)
