"""Prometheus metrics of one node."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
