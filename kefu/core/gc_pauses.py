"""How long the garbage collector stops the process, per generation, for ``/metrics``.

A collection stops the whole node (every socket, the group committer): its pauses are part of every latency
percentile and of the CPU a busy node spends per message, yet Prometheus' Python collectors count only
collections and objects. The collector's own callbacks time each one here, once per process.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_GENERATIONS = 3
_counts = [0] * _GENERATIONS
_seconds = [0.0] * _GENERATIONS
_started = [0.0]
_installed = False


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    generation = info["generation"]
    _counts[generation] += 1
    _seconds[generation] += time.perf_counter() - _started[0]


def install() -> None:
    """Start timing collections in this process (idempotent)."""
    global _installed
    if not _installed:
        _installed = True
        gc.callbacks.append(_on_collection)


def totals() -> list[tuple[int, int, float]]:
    """(generation, collections, seconds paused) since ``install``."""
    return [(generation, _counts[generation], _seconds[generation]) for generation in range(_GENERATIONS)]
