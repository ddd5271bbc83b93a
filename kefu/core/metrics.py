"""Prometheus metrics of one node."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from kefu.core import gc_pauses


class Metrics:
    """The node's Prometheus metrics, in a registry of its own so several apps can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kefu_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("kefu_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry)
        self.websockets = Gauge("kefu_websocket_connections", "Open WebSocket connections", ["kind"],
                                registry=self.registry)
        self.messages = Counter("kefu_messages_total", "Messages stored", ["sender_kind"], registry=self.registry)
        self.events = Counter("kefu_events_delivered_total", "Events sent to WebSocket clients", ["kind"],
                              registry=self.registry)
        # How the group committer batches: its batch sizes and how long each transaction took (the wait a
        # message queued behind a running batch adds to its latency).
        self.commit_batch = Histogram("kefu_group_commit_batch_size", "Writes per group-commit transaction",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=self.registry)
        self.commit_seconds = Histogram("kefu_group_commit_seconds", "Duration of one group-commit transaction",
                                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                        registry=self.registry)

        gc_pauses.install()
        self.registry.register(_GCPauses())

    def observe_commit(self, size: int, seconds: float) -> None:
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)


class _GCPauses(Collector):
    """The process's garbage collections and the time they stopped it (``kefu.core.gc_pauses``)."""

    def collect(self) -> Iterator[Metric]:
        collections = CounterMetricFamily("kefu_gc_collections", "Garbage collections of this process",
                                          labels=["generation"])
        paused = CounterMetricFamily("kefu_gc_pause_seconds", "Time garbage collections stopped this process",
                                     labels=["generation"])
        for generation, count, seconds in gc_pauses.totals():
            collections.add_metric([str(generation)], count)
            paused.add_metric([str(generation)], seconds)
        yield collections
        yield paused
