"""Queue stats are pushed by every node to its own supervisors: what one node last sent must not silence
another node of the same process (the test suite runs several nodes in one process on one database)."""

from __future__ import annotations

from kefu.events import types as ev
from kefu.events.types import DomainEvent
from kefu.routing.actions import publish_stats
from kefu.runtime import Runtime
from tests.conftest import runtime_on
from tests.factories import create_tenant
from tests.routing.engine import Engine


def stats_events(runtime: Runtime) -> list[DomainEvent]:
    seen: list[DomainEvent] = []
    runtime.bus.subscribe(lambda event: seen.append(event) if event.type == ev.ROUTING_QUEUE_STATS else None)
    return seen


async def test_two_nodes_in_one_process_each_push_the_same_figures(fresh_db_url: str) -> None:
    async with runtime_on(fresh_db_url) as first, runtime_on(fresh_db_url) as second:
        engine = Engine(first, await create_tenant(first))
        queue = await engine.queue()
        await engine.workflow({"queue_id": queue})
        await engine.task()
        on_first, on_second = stats_events(first), stats_events(second)

        await publish_stats(first, previous=set())
        await publish_stats(second, previous=set())  # the same figures, for its own supervisors
        assert [e.tenant_id for e in on_first] == [engine.tenant.id]
        assert [e.tenant_id for e in on_second] == [engine.tenant.id]

        await publish_stats(first, previous=set())  # unchanged since this node sent them: nothing new
        assert len(on_first) == 1
