"""Per-node fan-out of committed domain events to connected agents and widget visitors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kefu.events.types import DomainEvent

if TYPE_CHECKING:
    from kefu.core.metrics import Metrics
    from kefu.runtime import Runtime


class Hub:
    def __init__(self, runtime: "Runtime", metrics: "Metrics") -> None:
        self.runtime = runtime
        self.metrics = metrics

    def dispatch(self, event: DomainEvent) -> None:
        return None

    async def close(self) -> None:
        return None
