"""The routing loop of a node: wakes on routing-relevant events and on a short timer.

Every node runs it. Passes on different nodes split the work through row locks (see ``actions``), so a node
that dies mid-pass only rolls back its transaction and the next pass of any node routes those tasks again,
oldest first. An event wakes a pass for its tenant at once; the timer (``TICK_SECONDS``) runs a full pass
over every tenant with work, which also covers what no event announces: offer expiry, workflow timeouts,
wrap-ups, and events published by other nodes while this one was busy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from kefu.events import types as ev
from kefu.events.types import DomainEvent
from kefu.routing import actions
from kefu.routing.cache import caches_of

if TYPE_CHECKING:
    from kefu.runtime import Runtime

log = logging.getLogger("kefu.routing")

TICK_SECONDS = 0.5
STATS_SECONDS = 5.0
# Events after which waiting tasks may be routable: new tasks, freed or returned capacity, presence.
# A new queue-owned conversation announces its task with conversation.created.
WAKE_TYPES = frozenset({ev.ROUTING_TASK_CREATED, ev.ROUTING_TASK_UPDATED, ev.ROUTING_OFFER_UPDATED,
                        ev.ROUTING_AGENT_UPDATED, ev.CONVERSATION_CREATED, ev.CONVERSATION_UPDATED})


CACHE_TYPES = frozenset({ev.ROUTING_TASK_CREATED, ev.ROUTING_TASK_UPDATED, ev.ROUTING_OFFER_CREATED,
                         ev.ROUTING_OFFER_UPDATED, ev.ROUTING_AGENT_UPDATED})


def agents_of(event: DomainEvent) -> list[str]:
    """Agents whose presence, profile or load a routing event may have changed."""
    data = event.data or {}
    found = [data.get("agent_id"), data.get("previous_agent_id")]
    for part in ("task", "offer", "agent"):
        inner = data.get(part)
        if isinstance(inner, dict):
            found.extend((inner.get("agent_id"), inner.get("previous_agent_id")))
    return [a for a in found if isinstance(a, str)]


async def run(runtime: Runtime) -> None:
    """Route until cancelled; errors of one pass are logged and the next pass retries."""
    wake = asyncio.Event()
    woken: set[str] = set()
    tick = float(runtime.extras.get("routing_tick_seconds", TICK_SECONDS))  # type: ignore[arg-type]

    caches = caches_of(runtime.engine)

    def on_event(event: DomainEvent) -> None:
        if event.type in WAKE_TYPES:
            woken.add(event.tenant_id)
            wake.set()
        cache = caches.get(event.tenant_id)
        if cache is not None and event.type in CACHE_TYPES:
            # Committed now: re-read the agents this event is about. Other nodes' writes reach the cache only
            # this way (or by the periodic re-read); our own were marked when written, and again here in case
            # a pass read them between the write and its commit. Our own new offers are in the cache already.
            if event.type == ev.ROUTING_OFFER_CREATED and event.origin is None:
                return
            cache.mark(*agents_of(event))

    runtime.bus.subscribe(on_event)
    last_full = last_stats = 0.0
    active: set[str] = set()
    while True:
        try:
            # Not asyncio.wait_for: on Python 3.11 it drops a cancellation that arrives as the wait ends, and the
            # loop then routes on after its node's shutdown, which waits for it for ever.
            async with asyncio.timeout(tick):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()
        tenants, woken_now = sorted(woken), woken.copy()
        woken.clear()
        try:
            if time.monotonic() - last_full >= tick:
                last_full = time.monotonic()
                await actions.route_once(runtime)
            elif tenants:
                await actions.route_once(runtime, tenant_ids=tenants, housekeeping=False)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("routing pass failed")
            woken |= woken_now
            await asyncio.sleep(tick)
        if time.monotonic() - last_stats >= STATS_SECONDS:
            last_stats = time.monotonic()
            try:
                active = await actions.publish_stats(runtime, previous=active)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("publishing routing statistics failed")
