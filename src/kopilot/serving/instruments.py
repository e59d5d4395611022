"""Prometheus instruments of one server, on a registry of its own (never the global one).

These series are what kopilot's scaler reads for a model service (names are part of the API):

| series | type | meaning |
|---|---|---|
| `kopilot_serving_requests_total{code}` | counter | detection requests answered, by HTTP status |
| `kopilot_serving_request_failures_total{reason}` | counter | requests answered with an error |
| `kopilot_serving_request_duration_seconds` | histogram | arrival to answer, per request |
| `kopilot_serving_queue_duration_seconds` | histogram | time waiting for a batch, per request |
| `kopilot_serving_inference_duration_seconds` | histogram | ONNX Runtime time, per batch |
| `kopilot_serving_batch_size` | histogram | requests per batch |
| `kopilot_serving_inflight_requests` | gauge | detection requests being handled now |
| `kopilot_serving_queue_depth` | gauge | requests waiting for a batch |
| `kopilot_serving_batch_failures_total` | counter | batches ONNX Runtime failed on |
| `kopilot_serving_ready` | gauge | 1 once the model is loaded and warmed up |
"""

from __future__ import annotations

import prometheus_client

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LATENCY_BUCKETS = _LATENCY_BUCKETS
"""Request-duration bucket bounds (the replay exporter publishes the same)."""
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Instruments:
    """The server's metrics; implements `batching.BatchObserver`."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = prometheus_client.Counter(
            "kopilot_serving_requests", "Detection requests answered, by HTTP status.", ["code"],
            registry=r,
        )  # fmt: skip
        self.failures = prometheus_client.Counter(
            "kopilot_serving_request_failures",
            "Detection requests answered with an error, by reason.",
            ["reason"],
            registry=r,
        )
        self.request_duration = prometheus_client.Histogram(
            "kopilot_serving_request_duration_seconds",
            "Time from a detection request's arrival to its answer.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = prometheus_client.Histogram(
            "kopilot_serving_queue_duration_seconds",
            "Time a request waited in the batching queue.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = prometheus_client.Histogram(
            "kopilot_serving_inference_duration_seconds",
            "ONNX Runtime time per batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = prometheus_client.Histogram(
            "kopilot_serving_batch_size", "Requests per inference batch.", buckets=_BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.batch_failures = prometheus_client.Counter(
            "kopilot_serving_batch_failures", "Batches ONNX Runtime failed on.", registry=r
        )
        self.inflight = prometheus_client.Gauge(
            "kopilot_serving_inflight_requests", "Detection requests being handled now.",
            registry=r,
        )  # fmt: skip
        self.depth = prometheus_client.Gauge(
            "kopilot_serving_queue_depth", "Requests waiting for a batch.", registry=r
        )
        self.ready = prometheus_client.Gauge(
            "kopilot_serving_ready", "1 once the model is loaded and warmed up.", registry=r
        )

    def batch_done(self, *, size: int, inference_s: float, queue_s: list[float]) -> None:
        self.batch_size.observe(size)
        self.inference_duration.observe(inference_s)
        for q in queue_s:
            self.queue_duration.observe(q)

    def batch_failed(self, *, size: int) -> None:
        self.batch_failures.inc()
        self.batch_size.observe(size)

    def queue_depth(self, depth: int) -> None:
        self.depth.set(depth)

    def answered(self, *, status: int, duration_s: float, reason: str | None) -> None:
        """Count one detection request's answer (and its failure reason, if any)."""
        self.requests.labels(code=str(status)).inc()
        self.request_duration.observe(duration_s)
        if reason is not None:
            self.failures.labels(reason=reason).inc()

    def exposition(self) -> bytes:
        """The text exposition format for `GET /metrics`."""
        return prometheus_client.generate_latest(self.registry)
