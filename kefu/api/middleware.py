"""ASGI middleware: request ids and access logs, body size and encoding limits, Prometheus metrics.

Written as plain ASGI (not BaseHTTPMiddleware) so WebSockets pass through untouched and responses are
not buffered.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.core.i18n import negotiate, translate
from kefu.core.ids import new_id
from kefu.core.logging import request_id_var
from kefu.core.metrics import Metrics

log = logging.getLogger("kefu.http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": {}, "request_id": request_id_var.get()}})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Assigns a request id, logs one line per request (no bodies, no query strings) and records metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else new_id("req")
        token = request_id_var.set(request_id)
        if scope["type"] == "websocket":
            # No per-frame wrapper: a chat socket sends thousands of frames, and none needs a header added.
            try:
                return await self.app(scope, receive, send)
            finally:
                request_id_var.reset(token)
        status_holder: dict[str, Any] = {"status": 500}
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            self.metrics.requests.labels(scope["method"], route, str(status_holder["status"])).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            log.info("request", extra={"method": scope["method"], "route": route,
                                       "status": status_holder["status"], "ms": round(elapsed * 1000, 2)})
            request_id_var.reset(token)


def _contains_nul(body: bytes) -> bool:
    """True if any JSON string holds a NUL; the cheap substring test only says where to look closer."""
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body:
        return False
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False  # malformed JSON gets its own error later
    stack = [parsed]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


# Raw file uploads (see kefu/api/v1/attachments.py): limited by KEFU_ATTACHMENT_MAX_BYTES instead.
UPLOAD_PATHS = frozenset({"/api/v1/attachments", "/api/v1/widget/attachments"})


class BodyLimitMiddleware:
    """Rejects bodies over the configured size (413) and JSON bodies that are not UTF-8 (400), before routing."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        lang = negotiate(headers.get(b"accept-language", b"").decode("latin-1") or None)
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            return await _send_error(send, 422, "validation_error", translate("validation_error", lang))
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)

        max_bytes, too_large = self.max_bytes, "payload_too_large"
        upload = scope["path"] in UPLOAD_PATHS
        if upload:  # raw file bodies: their own, larger limit and error code, and no JSON checks
            max_bytes, too_large = scope["app"].state.runtime.settings.attachment_max_bytes, "attachment_too_large"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return await _send_error(send, 413, too_large, translate(too_large, lang, limit=max_bytes))
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                return await _send_error(send, 413, too_large, translate(too_large, lang, limit=max_bytes))
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").lower()
        if body and not upload and (b"json" in content_type or not content_type):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return await _send_error(send, 400, "invalid_encoding", translate("invalid_encoding", lang))
            if _contains_nul(body):
                # NUL is never meaningful in our text fields, and PostgreSQL refuses it in text columns.
                return await _send_error(send, 422, "validation_error", translate("validation_error", lang))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class WidgetCORSMiddleware:
    """Lets shop pages on any origin call the widget API (and nothing else) from the browser.

    The widget authenticates with a visitor token in the Authorization header, never with cookies, so any
    origin may call it without credentials. Agent and admin endpoints stay same-origin.
    """

    PREFIX = "/api/v1/widget/"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=["*"], allow_methods=["GET", "POST"], allow_credentials=False,
            allow_headers=["Authorization", "Content-Type", "Accept-Language", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID"], max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.PREFIX):
            return await self.cors(scope, receive, send)
        return await self.app(scope, receive, send)
