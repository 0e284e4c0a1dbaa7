"""The server's Prometheus metrics (prometheus-client, in a registry of its own)."""

from __future__ import annotations


class Metrics:
    """Requests by endpoint and status, errors by kind, latency, requests waiting for the network, and
    connections or requests cut for time (by phase: headers, body, drain)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("i3d_requests", "Requests answered", ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("i3d_errors", "Requests that failed, by kind", ["endpoint", "kind"],
                              registry=self.registry)
        self.latency = Histogram("i3d_request_seconds", "Seconds from a request's arrival to its answer",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.queue_depth = Gauge("i3d_queue_depth", "Requests admitted but not yet running", registry=self.registry)
        self.timeouts = Counter("i3d_timeouts", "Connections and requests cut for time: headers late "
                                "(--header-timeout), a body stalled (--read-timeout), cut by a SIGTERM drain "
                                "(--drain-timeout)",
                                ["phase"], registry=self.registry)
        for phase in ("headers", "body", "drain"):
            self.timeouts.labels(phase)

    def observe(self, endpoint: str, status: int, kind: str | None, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if kind is not None:
            self.errors.labels(endpoint, kind).inc()
        self.latency.labels(endpoint).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
