"""The service's Prometheus metrics, in a registry of its own (not the process-global one,
so tests and embedders never see another service's series).

What collectors took in is read from their `Intake` counts at scrape time (no second
bookkeeping on the hot path); what the reader stored, skipped and dead-lettered, the spool
depths, delays, alerts and deliveries are recorded as they happen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.collectors.base import Intake
from pipeline.store.base import DeliveryOutcome, Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class ServiceMetrics:
    """Every series `/metrics` shows."""

    def __init__(self, intakes: Sequence[Intake] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        r.register(_IntakeCounts(intakes))
        self.stored = Counter(
            "secretwatch_events_stored",
            "Events newly stored (duplicates not counted)",
            ["collector", "source"],
            registry=r,
        )
        self.skipped = Counter(
            "secretwatch_events_skipped",
            "Records read and skipped (not accesses to secrets)",
            ["collector", "source"],
            registry=r,
        )
        self.dead = Counter(
            "secretwatch_events_dead_lettered",
            "Records dead-lettered (unparseable, implausible time, rejected at the door)",
            ["collector", "source"],
            registry=r,
        )
        self.spool_depth = Gauge(
            "secretwatch_spool_depth_bytes",
            "Bytes spooled by a collector and not yet stored",
            ["collector"],
            registry=r,
        )
        self.delay = DelayHistogram(
            "secretwatch_event_delay_seconds",
            "From an event's own time to its storing (end-to-end delay)",
        )
        r.register(self.delay)
        self.alerts = Counter(
            "secretwatch_alerts_raised", "Alerts raised or grown by detection", registry=r
        )
        self.detection_lag = Gauge(
            "secretwatch_detection_lag_seconds",
            "Now minus the time of the newest event judged",
            registry=r,
        )
        self.deliveries = Counter(
            "secretwatch_deliveries",
            "Delivery outcomes recorded, by sink and outcome",
            ["sink", "outcome"],
            registry=r,
        )
        self.ready = Gauge(
            "secretwatch_ready", "1 once the reader has caught up with the spools", registry=r
        )

    def observe_delays(self, ts_us: Sequence[int], now_us: int) -> None:
        """End-to-end delay of each event just stored."""
        self.delay.observe_many(ts_us, now_us)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DelayHistogram(Collector):
    """A histogram filled a batch at a time (one vectorized pass, not an `observe` and a
    lock per event: the reader stores tens of thousands of events a second)."""

    def __init__(self, name: str, doc: str, buckets: Sequence[float] = DELAY_BUCKETS) -> None:
        self.name, self.doc = name, doc
        self.bounds = np.array([*buckets], dtype=np.float64)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last: above them all
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, ts_us: Sequence[int], now_us: int) -> None:
        if not ts_us:
            return
        seconds = np.maximum(0.0, (now_us - np.asarray(ts_us, dtype=np.int64)) / 1e6)
        # le buckets: a value equal to a bound belongs to it
        where = np.searchsorted(self.bounds, seconds, side="left")
        counts = np.bincount(where, minlength=len(self.counts))
        with self._lock:
            self.counts += counts
            self.sum += float(seconds.sum())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self.counts)
            total = self.sum
        buckets = [(_le(b), float(c)) for b, c in zip(self.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", float(cumulative[-1])))
        yield HistogramMetricFamily(self.name, self.doc, buckets=buckets, sum_value=total)


def _le(bound: float) -> str:
    return repr(float(bound))  # as prometheus_client writes a finite bound: 1.0, 0.025


class _IntakeCounts(Collector):
    """The collectors' own counts, read when scraped."""

    def __init__(self, intakes: Sequence[Intake]) -> None:
        self.intakes = intakes

    def collect(self) -> Iterator[Metric]:
        families = {
            "requests": "Requests, messages or socket reads that carried records",
            "records": "Records (lines or documents) spooled",
            "rejected": "Inputs dead-lettered at the door (not framable, too large)",
            "unauthorized": "Requests refused for missing or wrong credentials",
        }
        for field, doc in families.items():
            family = CounterMetricFamily(
                f"secretwatch_collector_{field}", doc, labels=["collector"]
            )
            for intake in self.intakes:
                family.add_metric([intake.collector], getattr(intake.counts, field))
            yield family


class CountingStore:
    """The delivery thread's store, counting each recorded delivery outcome by sink."""

    def __init__(self, store: Store, metrics: ServiceMetrics) -> None:
        self._store = store
        self._metrics = metrics

    def record_delivery(
        self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        self._store.record_delivery(sink, outcomes, now)
        for o in outcomes:
            self._metrics.deliveries.labels(sink, o.state).inc()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
