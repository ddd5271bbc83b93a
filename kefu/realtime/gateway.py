"""WebSocket endpoints for agents (``/api/v1/realtime``) and widget visitors (``/api/v1/widget/ws``).

Protocol (both endpoints; see docs/api.md):

* client → ``{"type": "register", "id"?, "data": {"token" | "visitor_token", "resume_from": N | null}}``
  (``?resume_from=N`` on the URL is accepted too). The connection is subscribed to live events first,
  then the outbox is replayed (``id > resume_from``, tenant/contact scoped, at most ``REPLAY_LIMIT``, else a
  ``resync_required`` frame), then ``{"type": "registered", "data": {"last_event_id": N, ...}}``, then live
  events ``{"type": <event type>, "id": <event id>, "created_at", "data"}``; duplicates are dropped.
* client → ``{"type": "ack", "last_event_id": N}``, ``{"type": "ping"}`` (→ ``pong``), and
  ``{"type": "message.send", "id": <client message id>, "data": {...}}`` → ``message.ack`` after commit
  (idempotent by client id; goes through the group committer).
* client → ``{"type": "typing", "data": {"conversation_id"?, "typing": bool, "private"?}}`` → relayed as
  ``conversation.typing`` frames without an id to the other parties; rate limited, never stored
  (kefu/realtime/typing.py, docs/subsystems/workspace.md).
* errors: ``{"type": "error", "id": <frame id or null>, "data": {"code", "message", "details"}}`` in the
  language of Accept-Language (else the user's locale). Before a successful register every failure also
  closes the socket: 4401, or 4403 when the credential lacks ``conversations:read``. Close codes: hub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from sqlalchemy import func, select

from kefu.auth import service as auth_service
from kefu.channels import actions as channel_actions
from kefu.channels import visitor_tokens
from kefu.channels.policies import public_message, visitor_view
from kefu.contacts import service as contact_service
from kefu.conversations import actions as conversation_actions
from kefu.conversations import service as conversation_service
from kefu.conversations.schemas import Attachment
from kefu.core.clock import utcnow
from kefu.core.errors import DomainError, Forbidden, Unauthenticated
from kefu.core.i18n import negotiate, translate
from kefu.core.security import token_hash
from kefu.events import types as ev
from kefu.events.models import OutboxEvent
from kefu.events.outbox import oldest_event_id, to_event
from kefu.events.types import VISITOR_VISIBLE
from kefu.realtime.audience import agent_may_see, watches_all
from kefu.realtime.hub import (
    AGENT,
    CLOSE_FORBIDDEN,
    CLOSE_REGISTER_TIMEOUT,
    CLOSE_UNAUTHORIZED,
    VISITOR,
    Connection,
    Hub,
    dumps,
)
from kefu.realtime.typing import FRAME_TYPE as TYPING_FRAME
from kefu.realtime.typing import TypingLimiter, relay_of
from kefu.runtime import Runtime

log = logging.getLogger("kefu.realtime")
router = APIRouter()

REGISTER_TIMEOUT = 10.0
REPLAY_LIMIT = 1000
# A visitor's replay scans the tenant's events after resume_from; past this distance we ask for a resync.
VISITOR_REPLAY_MAX_DISTANCE = 50_000
MAX_SENDS_IN_FLIGHT = 32  # per connection; further message.send frames wait (back-pressure on the reader)
MAX_BODY = 10_000
MAX_CLIENT_ID = 80
TYPING_TARGET_TTL = 30.0  # seconds a typing frame's conversation → contact lookup is reused


class FrameError(Exception):
    """A client frame we refuse, answered with an error frame (and a close before register)."""

    def __init__(self, code: str, *, details: dict[str, Any] | None = None, close: int | None = None, **params: Any):
        super().__init__(code)
        self.code = code
        self.details = details or {}
        self.close = close
        self.params = params


def _invalid(field: str) -> FrameError:
    return FrameError("validation_error", details={"field": field})


MAX_EVENT_ID = 2**62  # ids are 64-bit in the database; anything larger is not an id of ours


def _event_id(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EVENT_ID:
        raise _invalid(field)
    return value


def _client_id(frame: dict[str, Any]) -> str:
    value = frame.get("id")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLIENT_ID:
        raise _invalid("id")
    return value


def _body(data: dict[str, Any]) -> str:
    body = data.get("body", "")
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise _invalid("data.body")
    return body


def _attachments(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = data.get("attachments")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > 10:
        raise _invalid("data.attachments")
    try:
        return [Attachment.model_validate(item).model_dump() for item in raw]
    except ValidationError:
        raise _invalid("data.attachments") from None


class RealtimeSession:
    """One WebSocket speaking the protocol; subclasses say who may register and what they may send."""

    kind = AGENT
    token_field = "token"

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.runtime: Runtime = websocket.app.state.runtime
        self.hub: Hub = websocket.app.state.hub
        header = websocket.headers.get("accept-language")
        self.explicit_lang = header is not None
        self.lang = negotiate(header, self.runtime.settings.default_locale)
        self.conn: Connection | None = None
        self._slots = asyncio.Semaphore(MAX_SENDS_IN_FLIGHT)
        self._expiry: asyncio.TimerHandle | None = None
        self._typing = TypingLimiter()
        # conversation id → (contact id, inbox id, monotonic expiry): typing frames must not hit the database
        self._typing_targets: dict[str, tuple[str, str, float]] = {}

    # -- lifecycle -------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.websocket.accept()
        try:
            if await self._register():
                await self._serve()
        except Exception:
            log.exception("websocket session failed", extra={"kind": self.kind})
        finally:
            if self._expiry is not None:
                self._expiry.cancel()
            if self.conn is not None:
                self.conn.closing = True  # acks of sends still committing have nowhere to go now
                self.hub.detach(self.conn)
                await self.conn.stop_writer()

    async def _receive(self) -> str | bytes | None:
        """Next client frame as text/bytes, or None once the client is gone."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes", b"")

    def _error_frame(self, code: str, frame_id: Any = None, details: dict[str, Any] | None = None,
                     **params: Any) -> dict[str, Any]:
        return {"type": "error", "id": frame_id if isinstance(frame_id, str) else None,
                "data": {"code": code, "message": translate(code, self.lang, **params), "details": details or {}}}

    async def _refuse(self, error: FrameError, frame_id: Any = None) -> None:
        """Answer a pre-register failure directly (no writer yet) and close."""
        with contextlib.suppress(Exception):
            await self.websocket.send_text(dumps(self._error_frame(error.code, frame_id, error.details,
                                                                   **error.params)))
            await self.websocket.close(code=error.close or CLOSE_UNAUTHORIZED, reason=error.code)

    # -- register ------------------------------------------------------------------------------------------

    async def _register(self) -> bool:
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT):  # not wait_for, which on 3.11 can drop a cancellation
                raw = await self._receive()
        except TimeoutError:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=CLOSE_REGISTER_TIMEOUT, reason="register_timeout")
            return False
        if raw is None:
            return False
        frame_id = None
        try:
            frame = self._parse(raw)
            frame_id = frame.get("id")
            if frame["type"] != "register":
                raise FrameError("register_required")
            data = frame.get("data")
            if not isinstance(data, dict):
                raise _invalid("data")
            raw_resume = data.get("resume_from")
            resume_from = _event_id(self._query_resume_from() if raw_resume is None else raw_resume,
                                    "data.resume_from")
            token = data.get(self.token_field)
            if not isinstance(token, str) or not token or len(token) > 4000:
                raise FrameError(self.invalid_token_code)
            try:
                identity = await self.authenticate(token)
            except Unauthenticated:
                raise FrameError(self.invalid_token_code) from None
            except Forbidden as exc:
                raise FrameError(exc.code, close=CLOSE_FORBIDDEN, **exc.params) from None
        except FrameError as error:
            await self._refuse(error, frame_id)
            return False

        # Subscribe before reading the replay: an event committed meanwhile is either in the replay or
        # queued live (or both, and then dropped once by id), never in neither.
        conn = self.conn = self.hub.connection(self.websocket, **identity)
        self.hub.attach(conn)
        prefix, last_event_id, replayed = await self._replay(conn, resume_from)
        registered = {"type": "registered", "data": {"last_event_id": last_event_id, **self.registered_data()}}
        if isinstance(frame_id, str):
            registered["id"] = frame_id
        prefix.append(dumps(registered))
        conn.start(prefix, replayed)
        try:
            await relay_of(self.hub)  # listen for other nodes' typing frames from now on
        except Exception:
            log.warning("typing relay unavailable", exc_info=True)
        expires_at = self.credential_expires_at()
        if expires_at is not None:
            # The session or key ends on its own: the socket ends with it (revocations arrive as events).
            delay = max(0.0, (expires_at - utcnow()).total_seconds())
            self._expiry = asyncio.get_running_loop().call_later(
                delay, conn.close_soon, CLOSE_UNAUTHORIZED, "credentials_expired")
        return True

    @property
    def invalid_token_code(self) -> str:
        return "invalid_token"

    def _query_resume_from(self) -> Any:
        raw = self.websocket.query_params.get("resume_from")
        if raw is None or raw in ("", "null"):
            return None
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 20 else raw  # a non-number is reported by _event_id

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise FrameError("malformed_json") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("unknown_frame")
        return frame

    async def _replay(self, conn: Connection, resume_from: int | None) -> tuple[list[str], int, int]:
        """Return (frames to send before ``registered``, last_event_id, number of replayed events)."""
        async with self.runtime.sessionmaker() as session:
            current = await session.scalar(
                select(func.max(OutboxEvent.id)).where(OutboxEvent.tenant_id == conn.tenant_id)) or 0
            if resume_from is None:
                await session.commit()
                return [], current, 0
            oldest = await oldest_event_id(session)
            expired = oldest is not None and resume_from + 1 < oldest
            rows = [] if expired or self.too_far(current, resume_from) else list(
                (await session.scalars(self.replay_query(conn, resume_from).order_by(OutboxEvent.id)
                                       .limit(REPLAY_LIMIT + 1))).all())
            await session.commit()
        if expired or len(rows) > REPLAY_LIMIT or self.too_far(current, resume_from):
            # Too much missed, or older than the retention: the client reloads its state over REST and
            # continues live from ``current``.
            reason = "events_expired" if expired else "too_many_missed_events"
            frame = {"type": "resync_required", "data": {"last_event_id": current, "reason": reason}}
            return [dumps(frame)], current, 0
        frames: list[str] = []
        last = resume_from
        for row in rows:
            event = to_event(row)
            last = max(last, event.id)
            text = self.replay_frame(conn, event)
            if text is not None and conn.remember(event.id):
                frames.append(text)
        return frames, max(last, resume_from), len(frames)

    # -- after register ------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        conn = self.conn
        assert conn is not None
        handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "message.send": self._on_send, "ack": self._on_ack, "ping": self._on_ping,
            "register": self._on_register_again, "typing": self._on_typing,
        }
        while True:
            raw = await self._receive()
            if raw is None or conn.closing:
                return
            frame_id = None
            try:
                frame = self._parse(raw)
                frame_id = frame.get("id")
                handler = handlers.get(frame["type"])
                if handler is None:
                    raise FrameError("unknown_frame")
                await handler(frame)
            except FrameError as error:
                conn.push(self._error_frame(error.code, frame_id, error.details, **error.params))

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        pong: dict[str, Any] = {"type": "pong"}
        if isinstance(frame.get("id"), str):
            pong["id"] = frame["id"]
        self.conn.push(pong)  # type: ignore[union-attr]

    async def _on_ack(self, frame: dict[str, Any]) -> None:
        value = frame.get("last_event_id")
        if value is None and isinstance(frame.get("data"), dict):
            value = frame["data"].get("last_event_id")  # tolerate the {"data": {...}} envelope too
        acked = _event_id(value, "last_event_id")
        if acked is None:
            raise _invalid("last_event_id")
        conn = self.conn
        assert conn is not None
        conn.acked = max(conn.acked, acked)

    async def _on_register_again(self, frame: dict[str, Any]) -> None:
        raise FrameError("already_registered")

    async def _on_typing(self, frame: dict[str, Any]) -> None:
        """Relay a typing indicator to the conversation's other parties (see kefu/realtime/typing.py)."""
        data = frame.get("data")
        if not isinstance(data, dict):
            raise _invalid("data")
        typing = data.get("typing")
        if not isinstance(typing, bool):
            raise _invalid("data.typing")
        conversation_id = data.get("conversation_id")
        if conversation_id is not None and (not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 40):
            raise _invalid("data.conversation_id")
        private = data.get("private", False)
        if not isinstance(private, bool):
            raise _invalid("data.private")
        if not self._typing.allow(conversation_id or "", typing):
            return
        try:
            target = await self.typing_target(conversation_id)
            if target is None:
                return
            conversation_id, contact_id, inbox_id = target
            agent_frame, visitor_frame = self.typing_frames(conversation_id, contact_id, typing, private)
            relay = await relay_of(self.hub)
            await relay.publish(tenant_id=self.conn.tenant_id, contact_id=contact_id,  # type: ignore[union-attr]
                                inbox_id=inbox_id, agent_frame=agent_frame, visitor_frame=visitor_frame,
                                exclude=self.conn)
        except FrameError:
            raise
        except Exception:  # best effort: a database hiccup drops one indicator, never the socket
            log.warning("typing frame dropped", exc_info=True, extra={"kind": self.kind})

    async def _cached_target(self, conversation_id: str, load: Callable[[], Awaitable[tuple[str, str] | None]]
                             ) -> tuple[str, str, str] | None:
        now = asyncio.get_running_loop().time()
        cached = self._typing_targets.get(conversation_id)
        if cached is not None and cached[2] > now:
            return conversation_id, cached[0], cached[1]
        found = await load()
        if found is None:
            raise FrameError("conversation_not_found")
        if len(self._typing_targets) > 256:
            self._typing_targets.clear()
        self._typing_targets[conversation_id] = (found[0], found[1], now + TYPING_TARGET_TTL)
        return conversation_id, found[0], found[1]

    async def typing_target(self, conversation_id: str | None) -> tuple[str, str, str] | None:
        """(conversation id, contact id, inbox id) a typing frame is about, or None to drop it."""
        raise NotImplementedError

    def typing_frames(self, conversation_id: str, contact_id: str, typing: bool,
                      private: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(frame for agents, frame for the widget or None)."""
        raise NotImplementedError

    async def _on_send(self, frame: dict[str, Any]) -> None:
        client_id = _client_id(frame)
        data = frame.get("data")
        if not isinstance(data, dict):
            raise _invalid("data")
        submission = self.message_submission(client_id, data)  # validates synchronously, raises FrameError
        await self._slots.acquire()
        echo = self.echo_of(client_id, submission[1])
        self.conn.sending.add(echo)  # type: ignore[union-attr]  (the hub leaves this message's event to the ack)
        # A callback, not a task per message: the ack needs no coroutine of its own.
        future = self.runtime.committer.submit_batched(*submission)
        future.add_done_callback(functools.partial(self._acknowledge, client_id, echo))

    def _acknowledge(self, client_id: str, echo: tuple[str, str | None, str], future: asyncio.Future[Any]) -> None:
        """Answer a committed (or refused) ``message.send``. A client id committed concurrently elsewhere is
        resolved inside the committer (its per-item rerun returns the stored message): nothing to retry."""
        conn = self.conn
        assert conn is not None
        try:
            error = future.exception() if not future.cancelled() else asyncio.CancelledError()
            if error is None:
                message, created = future.result()
                conn.push({"type": "message.ack", "id": client_id,
                           "data": {"message": self.ack_message(message.json_payload()), "created": created}})
            elif isinstance(error, DomainError):
                conn.push(self._error_frame(error.code, client_id, error.details, **error.params))
            else:
                log.error("message.send failed", exc_info=error, extra={"kind": self.kind})
                conn.push(self._error_frame("internal_error", client_id))
        finally:
            conn.sending.discard(echo)
            self._slots.release()

    # -- what subclasses decide ----------------------------------------------------------------------------

    async def authenticate(self, token: str) -> dict[str, Any]:
        raise NotImplementedError

    def credential_expires_at(self) -> datetime | None:
        """When the credential this socket registered with stops working (the socket closes then)."""
        return None

    def registered_data(self) -> dict[str, Any]:
        raise NotImplementedError

    def too_far(self, current: int, resume_from: int) -> bool:
        return False

    def replay_query(self, conn: Connection, resume_from: int) -> Any:
        raise NotImplementedError

    def replay_frame(self, conn: Connection, event: Any) -> str | None:
        raise NotImplementedError

    def message_submission(self, client_id: str, data: dict[str, Any]) -> tuple[Any, Any]:
        """Validate a ``message.send`` frame; return (batch function, item) for the group committer."""
        raise NotImplementedError

    def ack_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def echo_of(self, client_id: str, item: Any) -> tuple[str, str | None, str]:
        """(sender kind, sender id, client id) the stored message will carry: how the hub recognises the
        ``message.created`` of this socket's own send (if they differ, the socket simply gets both frames)."""
        raise NotImplementedError


class AgentSession(RealtimeSession):
    """Agents and integrations: their tenant's events (plain agents a narrowed set, see audience.py); they
    post replies and internal notes."""

    kind = AGENT
    token_field = "token"

    async def authenticate(self, token: str) -> dict[str, Any]:
        async with self.runtime.sessionmaker() as session:
            principal = await auth_service.authenticate(session=session, token=token)
            await session.commit()
        if not principal.can("conversations:read"):
            raise Forbidden("insufficient_scope" if principal.kind == "api_key" else "forbidden",
                            scope="conversations:read")
        self.principal = principal
        if not self.explicit_lang and principal.kind == "user":
            self.lang = principal.locale if principal.locale in ("zh", "en") else self.lang
        return {"kind": AGENT, "tenant_id": principal.tenant_id, "subject_id": principal.id,
                "token_hash": token_hash(token), "user_id": principal.user_id,
                "watch_all": watches_all(principal_kind=principal.kind, role=principal.role)}

    def credential_expires_at(self) -> datetime | None:
        return self.principal.expires_at

    def registered_data(self) -> dict[str, Any]:
        return {"user_id": self.principal.user_id, "principal_id": self.principal.id,
                "tenant_id": self.principal.tenant_id}

    def replay_query(self, conn: Connection, resume_from: int) -> Any:
        return select(OutboxEvent).where(OutboxEvent.tenant_id == conn.tenant_id, OutboxEvent.id > resume_from,
                                         OutboxEvent.type.not_in(ev.INTERNAL))

    def replay_frame(self, conn: Connection, event: Any) -> str | None:
        if not agent_may_see(event, user_id=conn.user_id, watch_all=conn.watch_all):
            return None
        return dumps(event.frame())

    async def typing_target(self, conversation_id: str | None) -> tuple[str, str, str] | None:
        if not self.principal.can("conversations:write"):
            raise FrameError("insufficient_scope" if self.principal.kind == "api_key" else "forbidden",
                             scope="conversations:write")
        if conversation_id is None:
            raise _invalid("data.conversation_id")

        async def load() -> tuple[str, str] | None:
            async with self.runtime.sessionmaker() as session:
                try:
                    conversation = await conversation_service.access_conversation(
                        session=session, tenant_id=self.principal.tenant_id, conversation_id=conversation_id)
                except DomainError:
                    return None
                finally:
                    await session.commit()
            return conversation.contact_id, conversation.inbox_id

        return await self._cached_target(conversation_id, load)

    def typing_frames(self, conversation_id: str, contact_id: str, typing: bool,
                      private: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        sender_kind = "agent" if self.principal.kind == "user" else "bot"
        common = {"conversation_id": conversation_id, "typing": typing, "sender_kind": sender_kind}
        agent = {"type": TYPING_FRAME, "data": {**common, "user_id": self.principal.user_id,
                                                  "name": self.principal.display_name or None,
                                                  "private": private, "contact_id": contact_id}}
        return agent, None if private else {"type": TYPING_FRAME, "data": common}

    def message_submission(self, client_id: str, data: dict[str, Any]) -> tuple[Any, Any]:
        principal = self.principal
        if not principal.can("conversations:write"):
            raise FrameError("insufficient_scope" if principal.kind == "api_key" else "forbidden",
                             scope="conversations:write")
        conversation_id = data.get("conversation_id")
        if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= 40:
            raise _invalid("data.conversation_id")
        body = _body(data)
        private = data.get("private", False)
        if not isinstance(private, bool):
            raise _invalid("data.private")
        attachments = _attachments(data)
        # As over REST: users post as agents; an API key (an integration, not a person) posts as a bot.
        return conversation_actions.do_post_agent_messages, conversation_actions.AgentPost(
            tenant_id=principal.tenant_id, conversation_id=conversation_id,
            sender_kind="agent" if principal.kind == "user" else "bot", sender_id=principal.id, body=body,
            attachments=attachments, private=private, client_message_id=client_id)

    def echo_of(self, client_id: str, item: Any) -> tuple[str, str | None, str]:
        return item.sender_kind, item.sender_id, client_id


class VisitorSession(RealtimeSession):
    """Widget visitors: only their own contact's customer-visible events; they post customer messages."""

    kind = VISITOR
    token_field = "visitor_token"

    @property
    def invalid_token_code(self) -> str:
        return "invalid_visitor_token"

    def credential_expires_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.claims.expires_at, UTC)

    async def authenticate(self, token: str) -> dict[str, Any]:
        claims = self.claims = visitor_tokens.verify(self.runtime.settings.secret_key, token)
        # Listen on the contact that holds this visitor's timeline now (merges move it; reverts move it back).
        key = (claims.tenant_id, claims.visitor_id)
        async with self.runtime.sessionmaker() as session:
            contact_id = (await contact_service.visitor_contacts(session=session, visitors={key})).get(key)
            await session.commit()
        if contact_id is None:
            raise Unauthenticated("invalid_visitor_token")
        self.contact_id = contact_id
        return {"kind": VISITOR, "tenant_id": claims.tenant_id, "subject_id": claims.visitor_id,
                "contact_id": contact_id, "inbox_id": claims.inbox_id}

    def registered_data(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "visitor_id": self.claims.visitor_id}

    def too_far(self, current: int, resume_from: int) -> bool:
        return current - resume_from > VISITOR_REPLAY_MAX_DISTANCE

    async def typing_target(self, conversation_id: str | None) -> tuple[str, str, str] | None:
        claims, contact_id = self.claims, self.contact_id

        async def load_named() -> tuple[str, str] | None:
            async with self.runtime.sessionmaker() as session:
                try:
                    conversation = await conversation_service.access_conversation(
                        session=session, tenant_id=claims.tenant_id, conversation_id=conversation_id or "")
                except DomainError:
                    return None
                finally:
                    await session.commit()
            if conversation.contact_id != contact_id or conversation.inbox_id != claims.inbox_id:
                return None
            return conversation.contact_id, conversation.inbox_id

        if conversation_id is not None:
            return await self._cached_target(conversation_id, load_named)
        async with self.runtime.sessionmaker() as session:
            live = await conversation_service.live_conversation(
                session=session, tenant_id=claims.tenant_id, inbox_id=claims.inbox_id, contact_id=contact_id)
            await session.commit()
        # Before the first message there is no conversation, and so nobody to tell.
        return None if live is None else (live.id, live.contact_id, live.inbox_id)

    def typing_frames(self, conversation_id: str, contact_id: str, typing: bool,
                      private: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return {"type": TYPING_FRAME, "data": {"conversation_id": conversation_id, "typing": typing,
                                               "sender_kind": "customer", "contact_id": contact_id}}, None

    def replay_query(self, conn: Connection, resume_from: int) -> Any:
        # The same scope as the long-poll fallback: this contact's conversations in this inbox.
        conversations = conversation_service.conversation_ids_query(
            tenant_id=conn.tenant_id, contact_id=conn.contact_id or "", inbox_id=conn.inbox_id)
        return select(OutboxEvent).where(
            OutboxEvent.tenant_id == conn.tenant_id, OutboxEvent.contact_id == conn.contact_id,
            OutboxEvent.conversation_id.in_(conversations), OutboxEvent.id > resume_from,
            OutboxEvent.type.in_(VISITOR_VISIBLE))

    def replay_frame(self, conn: Connection, event: Any) -> str | None:
        view = visitor_view(event)
        if view is None:
            return None
        frame, inbox_id = view
        return dumps(frame) if inbox_id is None or inbox_id == conn.inbox_id else None

    def message_submission(self, client_id: str, data: dict[str, Any]) -> tuple[Any, Any]:
        return channel_actions.do_post_visitor_messages, channel_actions.VisitorPost(
            claims=self.claims, body=_body(data), client_message_id=client_id, attachments=_attachments(data),
            locale=self.lang)

    def ack_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        return public_message(payload)

    def echo_of(self, client_id: str, item: Any) -> tuple[str, str | None, str]:
        return "customer", self.contact_id, client_id


@router.websocket("/api/v1/realtime")
async def agent_realtime(websocket: WebSocket) -> None:
    """Agent event stream: register with a session token or API key, then events, acks and sends."""
    await AgentSession(websocket).run()


@router.websocket("/api/v1/widget/ws")
async def widget_realtime(websocket: WebSocket) -> None:
    """Widget visitor stream: register with the visitor token from POST /api/v1/widget/sessions."""
    await VisitorSession(websocket).run()
