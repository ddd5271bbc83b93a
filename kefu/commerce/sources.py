"""Per-node machinery in front of the order systems: connector registry, circuit breakers, read-through cache.

Kept out of ``service.py`` because it is process state (one ``CommerceHub`` per runtime, in
``runtime.extras["commerce"]``), not a read. Connector kinds are registered by ``kefu.integrations.commerce``
(the domain never imports integrations): ``register_source_kind("rest", factory)``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kefu.commerce.ports import OrderSource, SourceUnavailable
from kefu.commerce.schemas import Order
from kefu.core.errors import DomainError
from kefu.core.tasks import cancel_and_wait

if TYPE_CHECKING:
    from kefu.runtime import Runtime

T = TypeVar("T")
DEMO = "demo_shop"  # the connector key of the built-in demo shop (no row needed)

# kind -> factory(tenant_id, config) -> OrderSource
SourceFactory = Callable[[str, dict[str, Any]], OrderSource]
SOURCE_KINDS: dict[str, SourceFactory] = {}


def register_source_kind(kind: str, factory: SourceFactory) -> None:
    """Make a connector kind available (called by ``kefu.integrations.commerce.install``)."""
    SOURCE_KINDS[kind] = factory


class CircuitBreaker:
    """Closed → open after ``failures`` consecutive failures; after ``cooldown`` one trial call (half-open).

    While open, calls fail at once, so a dead order system costs lookups nothing: they go straight to the
    last known data instead of waiting for a timeout each time. ``now`` is the clock (monotonic seconds);
    tests pass their own to move time by hand.
    """

    def __init__(self, *, failures: int = 3, cooldown: float = 10.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = failures
        self.cooldown = cooldown
        self.now = now
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.now() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        self._trial = False
        if self.failures >= self.max_failures or self.opened_at is not None:
            self.opened_at = self.now()


@dataclass
class SourceEntry:
    key: str  # DEMO or ccn_…
    kind: str
    marketplace: str
    source: OrderSource
    breaker: CircuitBreaker


@dataclass
class CachedOrder:
    ref: str
    connector: str
    version: int
    order: Order
    data_hash: str
    fetched_at: float  # time.time() of the last confirmation from the source


@dataclass
class CommerceHub:
    fresh_seconds: float = 30.0
    stale_seconds: float = 600.0
    call_timeout: float = 3.0
    # A money action still ``pending`` this long after the call timeout was abandoned between claim and settle
    # (a crash, a deploy): a retry with its key or the background pass runs it again under the same key.
    abandoned_margin: float = 30.0
    breaker_failures: int = 3
    breaker_cooldown: float = 10.0
    max_orders: int = 50_000
    # Background passes (``kefu.commerce.workers.run``): how often, and how long an open order may go
    # unconfirmed by its source before reconciliation checks it. Fields, so a node (or a test) can tune them.
    pass_seconds: float = 300.0
    reconcile_after: float = 600.0
    # (tenant, connector) -> the last order id a reconciliation pass checked; the next pass goes on after it,
    # so orders the source no longer knows cannot hold the head of the queue forever.
    reconcile_cursor: dict[tuple[str, str], str] = field(default_factory=dict)
    orders: OrderedDict[tuple[str, str], CachedOrder] = field(default_factory=OrderedDict)
    keys: dict[tuple[str, str, str, str], tuple[list[str], float]] = field(default_factory=dict)
    sources: dict[tuple[str, str], SourceEntry] = field(default_factory=dict)
    connectors: dict[str, tuple[list[SourceEntry], float]] = field(default_factory=dict)
    refreshing: set[tuple[str, str]] = field(default_factory=set)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)  # background refreshes (``spawn``)
    settling: set[asyncio.Task[Any]] = field(default_factory=set)  # writes that must finish (``finish_anyway``)

    @property
    def abandoned_after(self) -> float:
        """Seconds after its claim when a pending action counts as abandoned."""
        return self.call_timeout + self.abandoned_margin

    def remember(self, tenant_id: str, cached: CachedOrder) -> None:
        key = (tenant_id, cached.ref)
        self.orders[key] = cached
        self.orders.move_to_end(key)
        while len(self.orders) > self.max_orders:
            self.orders.popitem(last=False)

    def cached(self, tenant_id: str, ref: str) -> CachedOrder | None:
        return self.orders.get((tenant_id, ref))

    def forget_tenant_connectors(self, tenant_id: str) -> None:
        self.connectors.pop(tenant_id, None)

    async def call(self, entry: SourceEntry, fn: Callable[[], Awaitable[T]]) -> T:
        """Call the source through its breaker with a timeout; outages become ``SourceUnavailable``."""
        if not entry.breaker.allow():
            raise SourceUnavailable("circuit open")
        try:
            async with asyncio.timeout(self.call_timeout):  # not wait_for, which on 3.11 can drop a cancellation
                result = await fn()
        except DomainError:
            entry.breaker.success()  # the source answered (a refusal is an answer, not an outage)
            raise
        except Exception as exc:  # down, slow, or a connector bug: all mean "no usable answer"
            entry.breaker.failure()
            raise SourceUnavailable(str(exc) or type(exc).__name__) from exc
        entry.breaker.success()
        return result

    def spawn(self, coro: Awaitable[Any]) -> None:
        _tracked(self.tasks, coro)

    async def finish_anyway(self, coro: Awaitable[T]) -> T:
        """Await ``coro`` in a task of its own that a cancellation of the caller (client gone) does not stop;
        the node's shutdown waits for it (``stop``)."""
        return await asyncio.shield(_tracked(self.settling, coro))

    async def stop(self) -> None:
        """At the node's shutdown, before its database closes: drop background refreshes, let settling writes
        finish. A task left running would otherwise reach the database after it closed."""
        await cancel_and_wait(list(self.tasks))
        await asyncio.gather(*self.settling, return_exceptions=True)


def _tracked(group: set[asyncio.Task[Any]], coro: Awaitable[T]) -> asyncio.Future[T]:
    """``coro`` as a task that stays in ``group`` until it is done."""
    task = asyncio.ensure_future(coro)
    group.add(task)
    task.add_done_callback(group.discard)
    return task


def hub_of(runtime: Runtime) -> CommerceHub:
    """The node's hub, created on first use."""
    hub = runtime.extras.get("commerce")
    if hub is None:
        hub = runtime.extras["commerce"] = CommerceHub()
    return hub  # type: ignore[return-value]
