"""Prometheus metrics, in a registry per app (no process-global state, testable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.prometheus = CollectorRegistry()
        self.requests = Histogram("ragline_http_request_duration_seconds", "HTTP request latency",
                                  ["route", "method", "status"], registry=self.prometheus, buckets=_LATENCY_BUCKETS)
        self.retrieval = Histogram("ragline_retrieval_duration_seconds", "query embedding + vector search",
                                   ["stage"], registry=self.prometheus, buckets=_LATENCY_BUCKETS)
        self.generation = Histogram("ragline_generation_duration_seconds", "answer generation",
                                    ["model"], registry=self.prometheus, buckets=_LATENCY_BUCKETS)
        self.lineage = Histogram("ragline_lineage_write_duration_seconds", "lineage transaction per answer",
                                 registry=self.prometheus, buckets=_LATENCY_BUCKETS)
        self.embedding_requests = Counter("ragline_embedding_requests", "embedding calls", ["kind"],
                                          registry=self.prometheus)
        self.answers = Counter("ragline_answers", "answers given", ["endpoint", "status"], registry=self.prometheus)
        self.errors = Counter("ragline_errors", "error responses", ["route", "status"], registry=self.prometheus)

    def watch_outbox(self, pending: Callable[[], tuple[int, datetime | None]]) -> None:
        """Export the outbox backlog and the relay's lag, read from the store at scrape time."""
        self.prometheus.register(_OutboxCollector(pending))

    def observe_answer(self, endpoint: str, status: str, timings_ms: dict[str, float], model: str) -> None:
        self.answers.labels(endpoint, status).inc()
        self.embedding_requests.labels("query").inc()
        for stage in ("embed", "search"):
            if f"{stage}_ms" in timings_ms:
                self.retrieval.labels(stage).observe(timings_ms[f"{stage}_ms"] / 1000)
        if "generate_ms" in timings_ms:
            self.generation.labels(model).observe(timings_ms["generate_ms"] / 1000)
        if "lineage_ms" in timings_ms:
            self.lineage.observe(timings_ms["lineage_ms"] / 1000)


class _OutboxCollector(Collector):
    """``ragline_outbox_pending``: events not yet acknowledged by the relay's target (Kafka,
    or the lake); ``ragline_relay_lag_seconds``: age of the oldest of them (0 when none)."""

    def __init__(self, pending: Callable[[], tuple[int, datetime | None]]) -> None:
        self._pending = pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            count, oldest = self._pending()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is down
            return
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("ragline_outbox_pending", "outbox events not yet delivered by the relay",
                                value=count)
        yield GaugeMetricFamily("ragline_relay_lag_seconds", "age of the oldest undelivered outbox event",
                                value=max(lag, 0.0))
