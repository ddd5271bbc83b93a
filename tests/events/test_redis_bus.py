"""The Redis Streams bus carries events between nodes; each node dispatches its own events locally once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from kefu.events.bus import RedisStreamBus
from kefu.events.types import DomainEvent


def _event(i: int) -> DomainEvent:
    return DomainEvent(id=i, type="test.bus", tenant_id="ten_bus", data={"i": i}, created_at=datetime.now(UTC))


async def test_events_cross_nodes_once_each(redis_url: str) -> None:
    a, b = RedisStreamBus(redis_url, "node-a"), RedisStreamBus(redis_url, "node-b")
    got_a: list[DomainEvent] = []
    got_b: list[DomainEvent] = []
    a.subscribe(got_a.append)
    b.subscribe(got_b.append)
    await a.start()
    await b.start()
    try:
        base = int(datetime.now(UTC).timestamp() * 1000)
        await a.publish([_event(base + 1), _event(base + 2)])
        await b.publish([_event(base + 3)])
        for _ in range(100):
            if len([e for e in got_b if e.id > base]) >= 3 and len([e for e in got_a if e.id > base]) >= 3:
                break
            await asyncio.sleep(0.02)
        assert [e.id for e in got_a if e.id > base] == [base + 1, base + 2, base + 3]
        assert sorted(e.id for e in got_b if e.id > base) == [base + 1, base + 2, base + 3]
        assert got_b[0].data == {"i": got_b[0].id}
    finally:
        await a.stop()
        await b.stop()


async def test_a_node_started_later_does_not_replay_old_stream_entries(redis_url: str) -> None:
    a = RedisStreamBus(redis_url, "node-early")
    await a.start()
    old_id = int(datetime.now(UTC).timestamp() * 1000) + 10
    await a.publish([_event(old_id)])
    late = RedisStreamBus(redis_url, "node-late")
    got: list[DomainEvent] = []
    late.subscribe(got.append)
    await late.start()
    try:
        await a.publish([_event(old_id + 1)])
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert [e.id for e in got] == [old_id + 1]  # history comes from the outbox, not the stream
    finally:
        await a.stop()
        await late.stop()
