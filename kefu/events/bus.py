"""Event buses: in-process for embedded mode, Redis Streams between nodes for scale-out.

A bus delivers committed events to local subscribers (the realtime hub, workers). The Redis bus also
carries them to every other node; each node dispatches its own events locally at once and skips them when
they come back from the stream, so local latency does not pay a Redis round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from kefu.events.types import DomainEvent

log = logging.getLogger("kefu.events.bus")

Handler = Callable[[DomainEvent], None]


class EventBus(Protocol):
    node_id: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, events: Sequence[DomainEvent]) -> None: ...
    def subscribe(self, handler: Handler) -> None: ...


class _LocalDispatch:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def dispatch(self, event: DomainEvent) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("event handler failed", extra={"event_type": event.type})


class MemoryBus(_LocalDispatch):
    """Single-process bus: publish is a direct, synchronous fan-out to subscribers."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            self.dispatch(event)


class RedisStreamBus(_LocalDispatch):
    """Redis Streams bus: XADD on publish, one XREAD loop per node delivering other nodes' events."""

    STREAM = "kefu:events"
    MAXLEN = 200_000

    def __init__(self, url: str, node_id: str) -> None:
        super().__init__()
        import redis.asyncio as redis

        self.node_id = node_id
        self._redis = redis.from_url(url)
        self._reader: asyncio.Task[None] | None = None
        self._last_id = "$"

    async def start(self) -> None:
        # Start after the current tail: events older than this node are replayed from the outbox, not here.
        info = await self._redis.xinfo_stream(self.STREAM) if await self._redis.exists(self.STREAM) else None
        self._last_id = info["last-generated-id"].decode() if info else "0-0"
        self._reader = asyncio.create_task(self._read_loop(), name="kefu-redis-bus")

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        await self._redis.aclose()

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            self.dispatch(event)
        if not events:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                wire = event.to_wire()
                wire["origin"] = self.node_id
                pipe.xadd(self.STREAM, {"e": orjson.dumps(wire)}, maxlen=self.MAXLEN, approximate=True)
            await pipe.execute()

    async def _read_loop(self) -> None:
        while True:
            try:
                batches = await self._redis.xread({self.STREAM: self._last_id}, count=500, block=1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis bus read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    self._last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        event = DomainEvent.from_wire(orjson.loads(fields[b"e"]))
                    except Exception:
                        log.exception("undecodable event on the bus")
                        continue
                    if event.origin != self.node_id:
                        self.dispatch(event)


def create_bus(redis_url: str | None, node_id: str) -> EventBus:
    """Choose the bus from settings: Redis when configured, otherwise in-process."""
    return RedisStreamBus(redis_url, node_id) if redis_url else MemoryBus(node_id)
