"""Prometheus metrics, kept in a registry of the app's own (so several apps can live in a test)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MAX_CACHED = 1024

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # The process's own CPU and memory (process_cpu_seconds_total...), as the default
        # registry would have: the benchmark reads the gateway's CPU cost per request from it.
        ProcessCollector(registry=self.registry)
        self.registry.register(GC_COLLECTOR)
        self.registry.register(PLATFORM_COLLECTOR)
        self.requests = Counter(
            "gateway_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from request to the end of the response (whole stream when streaming).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Requests being answered by the gateway now.",
            registry=self.registry,
        )
        self.replica_in_flight = Gauge(
            "gateway_inference_in_flight",
            "Requests in flight per inference replica (the gateway's view of queue depth).",
            ["replica"],
            registry=self.registry,
        )
        self.replica_requests = Counter(
            "gateway_inference_requests",
            "Requests sent to each inference replica (how the load is spread).",
            ["replica"],
            registry=self.registry,
        )
        self.replica_up = Gauge(
            "gateway_inference_replica_up",
            "1 when the replica serves, 0.5 while it loads, 0 when down.",
            ["replica"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "gateway_tokens_generated",
            "Completion tokens generated (from usage; one per streamed chunk without usage).",
            ["model"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed calls to an upstream, by upstream and kind (connect, timeout, status).",
            ["upstream", "kind"],
            registry=self.registry,
        )
        # Labelled children by label values: labels() validates and locks on every call (~3 us
        # each, several per request). Bounded: past _MAX_CACHED, labels() is called as usual.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            if len(self._children) < _MAX_CACHED:
                self._children[key] = child
        return child

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, method, str(status)).inc()
        self._child(self.latency, route).observe(seconds)

    def set_replica_in_flight(self, replica: str, count: int) -> None:
        self._child(self.replica_in_flight, replica).set(count)

    def replica_request_sent(self, replica: str) -> None:
        self._child(self.replica_requests, replica).inc()

    def count_tokens(self, model: str, count: int) -> None:
        self._child(self.tokens, model).inc(count)


class MetricsMiddleware:
    """Counts every response by route template and status; times it to its last byte.

    A pure ASGI middleware: BaseHTTPMiddleware would buffer streaming responses.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        self.metrics.in_flight.inc()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            # The template, not the raw path: raw paths would make unbounded label values.
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.request_done(template, scope["method"], status, elapsed)
