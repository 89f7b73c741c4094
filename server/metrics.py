"""Prometheus metrics of the service, on a registry of its own (one per app instance)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Metrics:
    """Request counts, stage latencies, queue depth, batch sizes and guardrail refusals."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "worldplan_requests_total",
            "HTTP requests by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "worldplan_stage_seconds",
            "Time spent per planning stage (queue, encode, plan, total).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "worldplan_queue_depth", "Plan requests waiting for a batch.", registry=self.registry
        )
        self.batch_size = Histogram(
            "worldplan_batch_size",
            "Requests planned together in one planner call.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.guardrail_refusals = Counter(
            "worldplan_guardrail_refusals_total",
            "Requests refused by a guardrail (loosening attempts and violating plans).",
            ["reason"],
            registry=self.registry,
        )
