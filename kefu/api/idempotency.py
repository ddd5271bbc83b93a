"""``Idempotency-Key`` on POST: the first response is stored (24 h) and replayed for retries.

The key space is per credential (hash of the Authorization header, or the client address when anonymous),
so two callers never collide. A retry with the same key but a different body is refused, and a retry
while the first request is still running gets 409 instead of running twice. A claim never answered, because
its node died mid-request, lapses after ``idempotency_pending_seconds``: the key does not stay locked for the
whole TTL, and a retry after that runs (domain idempotency, such as a message's ``client_message_id``, still
keeps a write that did commit from happening twice).

Stored responses can hold secrets (a new API key, a session token, customer data), so they are sealed with
AES-GCM under a key derived from the deployment secret, the caller's credential and the request body: the
database alone, without the very request that is retried, cannot open them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.api.middleware import _send_error
from kefu.api.models import IdempotencyRecord
from kefu.core.clock import utcnow
from kefu.core.i18n import negotiate, translate
from kefu.runtime import Runtime

log = logging.getLogger("kefu.api.idempotency")
MAX_KEY = 200


def _sealing_key(secret: str, credential: bytes, body: bytes) -> bytes:
    return hmac.new(secret.encode(), b"kefu-idempotency\0" + credential + b"\0" + body, hashlib.sha256).digest()


def seal(key: bytes, plaintext: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, b"kefu-idempotency")


def unseal(key: bytes, sealed: bytes) -> bytes | None:
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], b"kefu-idempotency")
    except (InvalidTag, ValueError):
        return None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, runtime_getter) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self._runtime_getter = runtime_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        raw_key = headers.get(b"idempotency-key")
        if raw_key is None:
            return await self.app(scope, receive, send)
        lang = negotiate(headers.get(b"accept-language", b"").decode("latin-1") or None)
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY or not key.isprintable():
            return await _send_error(send, 400, "invalid_idempotency_key", translate("invalid_idempotency_key", lang))
        runtime: Runtime = self._runtime_getter()

        message = await receive()
        body = message.get("body", b"")
        more = message.get("more_body", False)
        while more:  # BodyLimitMiddleware already buffered and bounded it; this is defensive
            nxt = await receive()
            body += nxt.get("body", b"")
            more = nxt.get("more_body", False)
        credential = headers.get(b"authorization") or ("anon:" + str((scope.get("client") or ("", 0))[0])).encode()
        scope_hash = hashlib.sha256(credential).hexdigest()
        path = scope["path"]
        request_hash = hashlib.sha256(b"POST " + path.encode() + b"\n" + body).hexdigest()

        sealing_key = _sealing_key(runtime.settings.secret_key, credential, body)
        existing, claimed_at = await self._claim(runtime, scope_hash, key, path, request_hash)
        if existing is None and claimed_at is None:  # claimed and lapsed again while we looked: a busy key
            return await _send_error(send, 409, "idempotency_in_progress", translate("idempotency_in_progress", lang))
        if existing is not None:
            if existing.request_hash != request_hash:
                return await _send_error(send, 422, "idempotency_key_reused", translate("idempotency_key_reused", lang))
            if existing.status_code is None:
                return await _send_error(send, 409, "idempotency_in_progress", translate("idempotency_in_progress", lang))
            payload = unseal(sealing_key, existing.response_body or b"")
            if payload is None:  # sealed under another deployment secret: cannot be replayed
                return await _send_error(send, 409, "idempotency_replay_unavailable",
                                         translate("idempotency_replay_unavailable", lang))
            await send({"type": "http.response.start", "status": existing.status_code, "headers": [
                (b"content-type", (existing.content_type or "application/json").encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"idempotent-replayed", b"true"),
            ]})
            await send({"type": "http.response.body", "body": payload})
            return

        captured: dict[str, object] = {"status": 500, "content_type": None, "body": []}

        async def send_wrapper(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                captured["status"] = msg["status"]
                for name, value in msg.get("headers", []):
                    if name.lower() == b"content-type":
                        captured["content_type"] = value.decode("latin-1")
            elif msg["type"] == "http.response.body":
                captured["body"].append(msg.get("body", b""))  # type: ignore[union-attr]
                if not msg.get("more_body", False):
                    # Store before the client can see the answer, so an immediate retry finds it complete.
                    await self._finish(runtime, scope_hash, key, claimed_at, captured, sealing_key)
                    captured["finished"] = True
            await send(msg)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send_wrapper)
        finally:
            if not captured.get("finished"):
                await self._finish(runtime, scope_hash, key, claimed_at, captured, sealing_key)

    async def _claim(self, runtime: Runtime, scope_hash: str, key: str, path: str,
                     request_hash: str) -> tuple[IdempotencyRecord | None, datetime | None]:
        """Claim ``key`` for this request: ``(None, claim time)`` if it is to run, else ``(live record, None)``.

        A record is live while its answer is younger than the TTL, or, unanswered, younger than the pending
        lease. A dead one is deleted by its exact claim time, so of two retries racing for it one replaces it
        and the other, whose insert then collides, reads that new claim.
        """
        settings = runtime.settings
        for _ in range(3):
            now = utcnow()
            async with runtime.sessionmaker() as session:
                existing = await session.get(IdempotencyRecord, (scope_hash, key))
                if existing is not None:
                    lifetime = (settings.idempotency_ttl_seconds if existing.status_code is not None
                                else settings.idempotency_pending_seconds)
                    if existing.created_at > now - timedelta(seconds=lifetime):
                        return existing, None
                    if existing.status_code is None:
                        log.warning("idempotency claim lapsed unanswered; the key is free again")
                    session.expunge(existing)
                    await session.execute(delete(IdempotencyRecord).where(
                        IdempotencyRecord.scope == scope_hash, IdempotencyRecord.key == key,
                        IdempotencyRecord.created_at == existing.created_at))
                session.add(IdempotencyRecord(scope=scope_hash, key=key, method="POST", path=path,
                                              request_hash=request_hash, status_code=None, created_at=now))
                try:
                    await session.commit()
                    return None, now
                except IntegrityError:
                    await session.rollback()  # a concurrent twin won the insert; read theirs
        async with runtime.sessionmaker() as session:
            return await session.get(IdempotencyRecord, (scope_hash, key)), None

    async def _finish(self, runtime: Runtime, scope_hash: str, key: str, claimed_at: datetime | None,
                      captured: dict[str, object], sealing_key: bytes) -> None:
        """Store the answer on our own claim; one that lapsed and was taken over by a retry is left alone."""
        status = int(captured["status"])  # type: ignore[arg-type]
        async with runtime.sessionmaker() as session:
            record = await session.get(IdempotencyRecord, (scope_hash, key))
            if record is None or record.created_at != claimed_at:
                return
            if status >= 500:
                await session.delete(record)  # a server failure is not an answer: let the client retry
            else:
                record.status_code = status
                record.content_type = captured["content_type"]  # type: ignore[assignment]
                record.response_body = seal(sealing_key, b"".join(captured["body"]))  # type: ignore[arg-type]
            await session.commit()


async def prune_expired(runtime: Runtime) -> int:
    """Delete records past their time to live; returns how many."""
    cutoff = utcnow() - timedelta(seconds=runtime.settings.idempotency_ttl_seconds)
    async with runtime.sessionmaker() as session:
        old = (await session.scalars(select(IdempotencyRecord.key).where(IdempotencyRecord.created_at < cutoff))).all()
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
        await session.commit()
    return len(old)
