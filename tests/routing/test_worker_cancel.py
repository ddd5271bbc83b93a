"""The routing loop stops when its node shuts down, even when the cancellation lines up with a wake-up: on Python
3.11 ``asyncio.wait_for`` dropped such a cancellation, the loop routed on, and the node's shutdown waited for it
for ever (its server thread then worked on under later tests)."""

from __future__ import annotations

import asyncio

from kefu.core.clock import utcnow
from kefu.events import types as ev
from kefu.events.types import DomainEvent
from kefu.routing import workers as routing_workers
from tests.conftest import runtime_on
from tests.factories import create_tenant


async def test_the_routing_loop_stops_when_cancelled_as_it_wakes_up(fresh_db_url: str) -> None:
    async with runtime_on(fresh_db_url) as runtime:
        tenant = await create_tenant(runtime)
        wake_up = DomainEvent(id=0, type=ev.ROUTING_AGENT_UPDATED, tenant_id=tenant.id, data={}, created_at=utcnow())
        for turns in range(8):  # the wake-up and the cancellation meet at every point of the loop's first turns
            loop_task = asyncio.create_task(routing_workers.run(runtime))
            await asyncio.sleep(0)  # it subscribes and waits
            runtime.bus.dispatch(wake_up)
            for _ in range(turns):
                await asyncio.sleep(0)
            loop_task.cancel()
            stopped, _ = await asyncio.wait({loop_task}, timeout=10)
            assert loop_task in stopped, f"the routing loop ran on after its cancellation ({turns} turns in)"
