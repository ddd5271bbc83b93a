"""The node's /metrics tell how often and how long the garbage collector stopped the process."""

from __future__ import annotations

import gc

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kefu.core.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, str], float]:
    text = generate_latest(metrics.registry).decode()
    return {(sample.name, sample.labels["generation"]): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name in ("kefu_gc_collections_total", "kefu_gc_pause_seconds_total")}


def test_full_collections_are_counted_and_timed_per_generation() -> None:
    metrics = Metrics()
    before = _samples(metrics)
    assert {generation for _, generation in before} == {"0", "1", "2"}
    garbage = [[] for _ in range(20_000)]
    for first, second in zip(garbage, garbage[1:], strict=False):  # cycles only the collector can free
        first.append(second)
        second.append(first)
    del garbage, first, second
    gc.collect()
    after = _samples(metrics)
    assert after[("kefu_gc_collections_total", "2")] >= before[("kefu_gc_collections_total", "2")] + 1
    assert after[("kefu_gc_pause_seconds_total", "2")] > before[("kefu_gc_pause_seconds_total", "2")]
    # A second app's registry reads the same process-wide figures (one callback per process, not per app).
    assert _samples(Metrics())[("kefu_gc_collections_total", "2")] == after[("kefu_gc_collections_total", "2")]
