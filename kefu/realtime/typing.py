"""Typing indicators: relayed between the sockets of a conversation, rate limited, never stored.

A typing frame is worth something for a few seconds only, so it skips the outbox (no event id, no replay,
no ack) and goes straight to the hub of this node and, in scale-out, to the other nodes through Redis
pub/sub (fire and forget: a frame lost while a node restarts costs nothing, the next keystroke resends it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from kefu.realtime.hub import Connection, Hub

log = logging.getLogger("kefu.realtime.typing")

CHANNEL = "kefu:ephemeral"
FRAME_TYPE = "conversation.typing"
REPEAT_SECONDS = 2.0  # a repeated "still typing" for one conversation is relayed at most this often
CHANGE_BURST = 10  # state changes allowed per connection ...
CHANGE_WINDOW = 10.0  # ... within this many seconds
EXPIRES_SECONDS = 6  # receivers clear a "typing: true" not refreshed within this long (documented)


class TypingLimiter:
    """Per-connection limits; excess frames are dropped (typing is best effort, so no error is sent)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[bool, float]] = {}
        self._changes: deque[float] = deque()

    def allow(self, conversation_id: str, typing: bool, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        previous = self._last.get(conversation_id)
        if previous is not None and previous[0] == typing:
            if not typing or now - previous[1] < REPEAT_SECONDS:
                return False  # a repeated stop never needs relaying; a repeated start only now and then
        else:
            while self._changes and now - self._changes[0] >= CHANGE_WINDOW:
                self._changes.popleft()
            if len(self._changes) >= CHANGE_BURST:
                return False
            self._changes.append(now)
        if len(self._last) > 64 and conversation_id not in self._last:
            self._last.pop(next(iter(self._last)))  # bounded memory for agents hopping between many chats
        self._last[conversation_id] = (typing, now)
        return True


class TypingRelay:
    """Delivers typing frames on this node, and through Redis to the others when a Redis URL is set."""

    def __init__(self, hub: Hub, *, redis_url: str | None, node_id: str) -> None:
        self.hub = hub
        self.node_id = node_id
        self._redis_url = redis_url
        self._redis: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._redis_url:
            import redis.asyncio as redis

            client = redis.from_url(self._redis_url)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(CHANNEL)
            except Exception:
                # Redis is down: typing stays local to this node for now; the next socket retries.
                log.warning("typing relay could not subscribe; local delivery only", exc_info=True)
                self._started = False
                with contextlib.suppress(Exception):
                    await client.aclose()
                return
            self._redis = client
            self._reader = asyncio.create_task(self._read_loop(pubsub), name="kefu-typing-relay")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _read_loop(self, pubsub: Any) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                packet = orjson.loads(message["data"])
                if packet.get("origin") != self.node_id:
                    self._deliver(packet, exclude=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("typing relay read failed; retrying")
                await asyncio.sleep(0.5)

    async def publish(self, *, tenant_id: str, contact_id: str | None, inbox_id: str | None,
                      agent_frame: dict[str, Any], visitor_frame: dict[str, Any] | None,
                      exclude: Connection | None) -> None:
        packet = {"origin": self.node_id, "tenant_id": tenant_id, "contact_id": contact_id, "inbox_id": inbox_id,
                  "agent_frame": agent_frame, "visitor_frame": visitor_frame}
        self._deliver(packet, exclude=exclude)
        if self._redis is not None:
            try:
                await self._redis.publish(CHANNEL, orjson.dumps(packet))
            except Exception:  # best effort: other nodes miss one indicator, the next keystroke resends it
                log.warning("typing relay publish failed", exc_info=True)

    def _deliver(self, packet: dict[str, Any], *, exclude: Connection | None) -> None:
        self.hub.deliver_ephemeral(tenant_id=packet["tenant_id"], contact_id=packet.get("contact_id"),
                                   inbox_id=packet.get("inbox_id"), agent_frame=packet["agent_frame"],
                                   visitor_frame=packet.get("visitor_frame"), exclude=exclude)


async def relay_of(hub: Hub) -> TypingRelay:
    """The node's relay, started on first use (every registered socket calls this, so a node with sockets
    always listens to the other nodes)."""
    relay = hub.ephemeral
    if relay is None:
        runtime = hub.runtime
        relay = hub.ephemeral = TypingRelay(hub, redis_url=runtime.settings.redis_url, node_id=runtime.node_id)
    await relay.start()
    return relay
