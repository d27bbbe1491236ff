"""`/metrics`: the server's counters in the Prometheus text format (prometheus-client).

    minbert_requests_total{endpoint, status}      every answered request
    minbert_request_seconds{endpoint}             latency histogram
    minbert_batch_texts                           texts per model call (how well batching works)
    minbert_queue_texts                           texts waiting for the model now
    minbert_rejections_total{reason}              queue_full (503), out_of_scope (predictions rejected as oos)

Each app has its own registry, so two servers in one process (tests) never mix their numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

KNOWN_ENDPOINTS = frozenset({"/", "/health", "/ready", "/info", "/predict", "/embed", "/metrics", "/openapi.json"})


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queued: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("minbert_requests", "Answered requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "minbert_request_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch_texts = Histogram(
            "minbert_batch_texts",
            "Texts per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.queue = Gauge("minbert_queue_texts", "Texts waiting for the model", registry=self.registry)
        self.queue.set_function(queued)
        self.rejections = Counter("minbert_rejections", "Rejected work", ["reason"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Measured:
    """Pure ASGI, outermost: count each response by endpoint and status and time it (unknown paths: 'other'),
    the guards' refusals (401, 408, 413, 503) included."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in KNOWN_ENDPOINTS else "other"
        started, status = time.perf_counter(), 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
