"""Per-node fan-out of committed domain events to connected agents and widget visitors.

The bus calls ``Hub.dispatch`` synchronously for every committed event, so dispatch never awaits: it
serialises the event once (once for agents, once in the visitor projection), and appends the text to each
matching connection's bounded queue. Agent sockets are indexed by tenant, and plain agents also by user, so
an event meant for one agent (kefu/realtime/audience.py) reaches that agent and the tenant's supervisors
without looking at anyone else's sockets. One writer task per connection drains its queue, so a slow socket
delays only itself; when its queue overflows it is closed with ``CLOSE_SLOW_CONSUMER`` and the client
reconnects with ``resume_from``, which the outbox replay serves. Delivery is at least once (the outbox
sweeper may publish an event twice), so each connection drops event ids it has already sent. The one socket
that sent a new message gets its ``message.ack`` instead of that message's ``message.created`` (the ack
carries the stored message); a resume replays the event to it like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket

from kefu.channels.policies import visitor_view
from kefu.events.types import (
    CONTACT_MERGED,
    CONTACT_UNMERGED,
    CREDENTIALS_REVOKED,
    INTERNAL,
    MESSAGE_CREATED,
    VISITOR_VISIBLE,
    DomainEvent,
)
from kefu.realtime.audience import agent_recipient

if TYPE_CHECKING:
    from kefu.core.metrics import Metrics
    from kefu.realtime.typing import TypingRelay
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.realtime")

# Close codes (documented in docs/api.md). Clients reconnect after any code but 4401/4403.
CLOSE_SERVICE_RESTART = 1012  # the node is shutting down: reconnect (to any node) and resume
CLOSE_UNAUTHORIZED = 4401  # not registered, bad frame before register, or invalid token: re-authenticate
CLOSE_FORBIDDEN = 4403  # authenticated but not allowed to receive events
CLOSE_REGISTER_TIMEOUT = 4408  # no register frame in time
CLOSE_CONTACT_CHANGED = 4409  # a merge or its revert moved this visitor's timeline: reconnect and resume
CLOSE_SLOW_CONSUMER = 4429  # the client read too slowly and its queue overflowed: reconnect and resume

AGENT = "agent"
VISITOR = "visitor"

# Queue bounds in frames. An agent sees a whole tenant's traffic, so allow a longer burst than a visitor.
DEFAULT_QUEUE_LIMITS = {AGENT: 8192, VISITOR: 512}
SEEN_WINDOW = 4096  # how many recent event ids each connection remembers to drop duplicates

def dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def _own_send(event: DomainEvent) -> tuple[str, str | None, str] | None:
    """(sender kind, sender id, client id) of the message a ``message.created`` event announces, if the
    sender gave a client id: the socket that sent it gets its ack instead of this event (one frame less per
    message; the ack carries the same stored message). Other sockets of the same person still get it."""
    if event.type != MESSAGE_CREATED:
        return None
    message = event.data.get("message") if isinstance(event.data, dict) else None
    if not isinstance(message, dict) or not message.get("client_message_id"):
        return None
    return message.get("sender_kind") or "", message.get("sender_id"), message["client_message_id"]


class Connection:
    """One registered WebSocket: its identity, bounded outbound queue, duplicate filter and writer task."""

    __slots__ = ("websocket", "kind", "tenant_id", "contact_id", "inbox_id", "subject_id", "user_id", "watch_all",
                 "token_hash", "limit", "acked", "closing", "sending", "_queue", "_wake", "_seen", "_seen_order",
                 "_writer", "_hub", "_close_task")

    def __init__(self, hub: Hub, websocket: WebSocket, *, kind: str, tenant_id: str, subject_id: str,
                 contact_id: str | None = None, inbox_id: str | None = None, token_hash: str | None = None,
                 user_id: str | None = None, watch_all: bool = True) -> None:
        self._hub = hub
        self.websocket = websocket
        self.kind = kind
        self.tenant_id = tenant_id
        self.subject_id = subject_id  # user / API key id, or visitor id
        self.user_id = user_id  # the agent's user id (None for API keys and visitors)
        self.watch_all = watch_all  # an agent socket that gets every event of the tenant (see audience.py)
        self.contact_id = contact_id
        self.inbox_id = inbox_id
        self.token_hash = token_hash  # of the credential it registered with, to close it when revoked
        self.limit = hub.queue_limits[kind]
        self.acked = 0
        self.closing = False
        # (sender kind, sender id, client id) of this socket's message.send frames not yet acknowledged
        self.sending: set[tuple[str, str | None, str]] = set()
        self._queue: deque[tuple[str, bool]] = deque()
        self._wake = asyncio.Event()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    def remember(self, event_id: int) -> bool:
        """Record ``event_id`` as sent; False if it was already (a duplicate to drop)."""
        if event_id in self._seen:
            return False
        self._seen.add(event_id)
        self._seen_order.append(event_id)
        if len(self._seen_order) > SEEN_WINDOW:
            self._seen.discard(self._seen_order.popleft())
        return True

    def offer(self, event_id: int, text: str) -> None:
        """Queue an event frame unless it is a duplicate; close the connection if the queue is full."""
        if self.closing or not self.remember(event_id):
            return
        self._enqueue(text, True)

    def push(self, frame: dict[str, Any]) -> None:
        """Queue a control frame (ack, pong, error) behind the events already queued."""
        if not self.closing:
            self._enqueue(dumps(frame), False)

    def _enqueue(self, text: str, is_event: bool) -> None:
        if len(self._queue) >= self.limit:
            log.warning("slow websocket client closed", extra={"kind": self.kind, "queued": len(self._queue)})
            self.close_soon(CLOSE_SLOW_CONSUMER, "slow_consumer")
            return
        self._queue.append((text, is_event))
        self._wake.set()

    def start(self, prefix: list[str], replayed_events: int) -> None:
        """Start the writer: first ``prefix`` (replay + registered), then whatever live events queued meanwhile."""
        self._writer = asyncio.create_task(self._write_loop(prefix, replayed_events), name="kefu-ws-writer")

    async def _write_loop(self, prefix: list[str], replayed_events: int) -> None:
        send = self.websocket.send_text
        counter = self._hub.event_counters[self.kind]
        try:
            for text in prefix:
                await send(text)
            sent = replayed_events
            queue = self._queue
            while True:
                if not queue:
                    if sent:  # count in batches: one metric update per burst, not per frame
                        counter.inc(sent)
                        sent = 0
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                text, is_event = queue.popleft()
                await send(text)
                sent += is_event
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away mid-send; the reader sees the disconnect and cleans up
            self.closing = True

    def close_soon(self, code: int, reason: str) -> None:
        """Close from synchronous code (dispatch): stop queueing now, close the socket in a task."""
        if self.closing:
            return
        self.closing = True
        self._queue.clear()
        self._close_task = asyncio.get_running_loop().create_task(self.close(code, reason))

    async def close(self, code: int, reason: str = "") -> None:
        """Stop the writer and close the socket; the sender may be stuck on a full socket, hence the timeout."""
        self.closing = True
        self._hub.detach(self)
        await self.stop_writer()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):  # not wait_for, which on 3.11 can drop a cancellation
                await self.websocket.close(code=code, reason=reason)

    async def stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


def _discard(index: dict[Any, set[Connection]], key: Any, conn: Connection) -> None:
    group = index.get(key)
    if group is not None:
        group.discard(conn)
        if not group:
            del index[key]


class Hub:
    """Registry of this node's connections by tenant (agents) and by contact (visitors)."""

    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.queue_limits = dict(DEFAULT_QUEUE_LIMITS)
        self._agents: dict[str, set[Connection]] = {}  # every agent socket, by tenant
        self._watchers: dict[str, set[Connection]] = {}  # agent sockets that see the whole tenant
        self._by_user: dict[tuple[str, str], set[Connection]] = {}  # the other agent sockets, by (tenant, user)
        self._visitors: dict[tuple[str, str], set[Connection]] = {}
        self._all: set[Connection] = set()
        self.event_counters = {kind: metrics.events.labels(kind) for kind in (AGENT, VISITOR)}
        self.ephemeral: TypingRelay | None = None  # typing indicators (kefu/realtime/typing.py), made on first use
        self._gauges = {kind: metrics.websockets.labels(kind) for kind in (AGENT, VISITOR)}

    def connection(self, websocket: WebSocket, **identity: Any) -> Connection:
        return Connection(self, websocket, **identity)

    def attach(self, conn: Connection) -> None:
        """Subscribe a connection to live events (before its replay is read, so nothing falls in between)."""
        if conn.kind == AGENT:
            self._agents.setdefault(conn.tenant_id, set()).add(conn)
            if conn.watch_all:
                self._watchers.setdefault(conn.tenant_id, set()).add(conn)
            else:
                self._by_user.setdefault((conn.tenant_id, conn.user_id or ""), set()).add(conn)
        else:
            self._visitors.setdefault((conn.tenant_id, conn.contact_id or ""), set()).add(conn)
        self._all.add(conn)
        self._gauges[conn.kind].inc()

    def detach(self, conn: Connection) -> None:
        if conn not in self._all:
            return
        self._all.discard(conn)
        self._gauges[conn.kind].dec()
        if conn.kind == AGENT:
            _discard(self._agents, conn.tenant_id, conn)
            if conn.watch_all:
                _discard(self._watchers, conn.tenant_id, conn)
            else:
                _discard(self._by_user, (conn.tenant_id, conn.user_id or ""), conn)
        else:
            _discard(self._visitors, (conn.tenant_id, conn.contact_id or ""), conn)

    @property
    def connection_count(self) -> int:
        return len(self._all)

    def dispatch(self, event: DomainEvent) -> None:
        """Queue ``event`` for every connection allowed to see it; never blocks."""
        agents = self._agents.get(event.tenant_id)
        if event.type in (CONTACT_MERGED, CONTACT_UNMERGED):
            self._refile_visitors(event)
        if event.type in INTERNAL:
            if event.type == CREDENTIALS_REVOKED and agents:
                self._close_revoked(list(agents), event.data)
            return
        echo = _own_send(event)
        if agents:
            text = None
            recipient = agent_recipient(event)
            targets = agents if recipient is None else (*self._watchers.get(event.tenant_id, ()),
                                                        *self._by_user.get((event.tenant_id, recipient), ()))
            for conn in targets:
                if echo is not None and echo in conn.sending:  # its ack carries the message
                    conn.remember(event.id)
                    continue
                if text is None:
                    text = dumps(event.frame())
                conn.offer(event.id, text)
        if event.contact_id is None or event.type not in VISITOR_VISIBLE:
            return
        visitors = self._visitors.get((event.tenant_id, event.contact_id))
        if not visitors:
            return
        view = visitor_view(event)
        if view is None:
            return
        frame, inbox_id = view
        text = None
        for conn in visitors:
            if inbox_id is None or conn.inbox_id == inbox_id:
                if echo is not None and echo in conn.sending:  # its ack carries the message
                    conn.remember(event.id)
                    continue
                if text is None:
                    text = dumps(frame)
                conn.offer(event.id, text)

    def deliver_ephemeral(self, *, tenant_id: str, contact_id: str | None, inbox_id: str | None,
                          agent_frame: dict[str, Any], visitor_frame: dict[str, Any] | None,
                          exclude: Connection | None = None) -> None:
        """Queue a frame that is not an event (typing) to the tenant's agents and, if ``visitor_frame`` is
        given, to the contact's widget sockets in that inbox; never back to ``exclude`` (the sender)."""
        agents = self._agents.get(tenant_id)
        if agents:
            for conn in agents:
                if conn is not exclude:
                    conn.push(agent_frame)
        if visitor_frame is None or contact_id is None:
            return
        for conn in self._visitors.get((tenant_id, contact_id), ()):
            if conn is not exclude and (inbox_id is None or conn.inbox_id == inbox_id):
                conn.push(visitor_frame)

    def _refile_visitors(self, event: DomainEvent) -> None:
        """Visitors of both contacts of a merge reconnect, so each is filed under the contact it belongs to now."""
        merge = event.data.get("merge") if isinstance(event.data, dict) else None
        if not isinstance(merge, dict):
            return
        for contact_id in (merge.get("source_contact_id"), merge.get("target_contact_id")):
            for conn in list(self._visitors.get((event.tenant_id, contact_id or ""), ())):
                conn.close_soon(CLOSE_CONTACT_CHANGED, "contact_changed")

    @staticmethod
    def _close_revoked(agents: list[Connection], data: dict[str, Any]) -> None:
        for conn in agents:
            if conn.subject_id != data.get("principal_id"):
                continue
            if data.get("token_hash") and conn.token_hash != data["token_hash"]:
                continue  # another session of the same user
            if data.get("keep_token_hash") and conn.token_hash == data["keep_token_hash"]:
                continue  # the session that changed the password stays
            conn.close_soon(CLOSE_UNAUTHORIZED, "credentials_revoked")

    async def close(self) -> None:
        """Close every connection at shutdown so clients reconnect (to another node) and resume."""
        conns = list(self._all)
        await asyncio.gather(*(c.close(CLOSE_SERVICE_RESTART, "server_restart") for c in conns),
                             return_exceptions=True)
        if self.ephemeral is not None:
            await self.ephemeral.stop()
