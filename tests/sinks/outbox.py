"""Helpers for delivery tests: real alerts in a real store, sink configs, a fast policy,
and a virtual clock for the delivery worker."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter

from detectors.alert import Finding, Incident
from pipeline.record import to_micros
from pipeline.sinks.delivery import Deliverer, Tally
from pipeline.sinks.settings import DeliveryConfig, SinkConfig
from pipeline.store.base import Store

HOUR_US = 3_600_000_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example


def alert(
    identity: str = "root",
    at: str = "2026-05-01T03:00:00Z",
    detector: str = "root_token",
    severity: str = "critical",
    evidence: tuple[str, ...] = ("e1",),
    more: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """An alert as detection hands it to the store; `more` adds (detector, severity)
    findings to the same incident."""
    start = to_micros(at) // HOUR_US * HOUR_US
    incident = Incident(identity, baseline_version=3)
    for name, level in ((detector, severity), *more):
        incident.add(
            Finding(
                name,
                identity,
                start,
                start + HOUR_US,
                to_micros(at),
                1.0,
                0.5,
                level,
                f"{identity} tripped {name} at {at}.",
                evidence,
            )
        )
    return incident.alert().model_dump(mode="json")


def save(store: Store, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    store.save_detection([], {}, list(alerts), version=1)
    return list(alerts)


def many(store: Store, n: int, severity: str = "critical") -> list[dict[str, Any]]:
    """`n` alerts on distinct identities, an hour apart."""
    alerts = [
        alert(
            f"svc-{i:04d}",
            f"2026-05-01T{i % 24:02d}:{(i // 24) % 60:02d}:00Z",
            severity=severity,
            evidence=(f"e{i}",),
        )
        for i in range(n)
    ]
    return save(store, *alerts)


def sink(**fields: Any) -> Any:
    """A validated `sinks:` entry."""
    return TypeAdapter(SinkConfig).validate_python(fields)


def policy(**overrides: Any) -> DeliveryConfig:
    """Delivery settings that keep tests fast: short polls, back-offs and cool-downs."""
    base: dict[str, Any] = {
        "poll_seconds": 0.02,
        "backoff_base": timedelta(milliseconds=50),
        "backoff_max": timedelta(milliseconds=200),
        "breaker_failures": 5,
        "breaker_cooldown": timedelta(milliseconds=300),
        "suppression_window": 0,
        "max_attempts": 50,
    }
    return DeliveryConfig.model_validate({**base, **overrides})


class VirtualClock:
    """The delivery worker's time in tests. It stands still while the worker sends (real
    requests to real receivers take what they take) and moves on only while the worker
    idles, by as much as it asked to wait, without sleeping. Back-offs, Retry-After
    pauses, breaker cool-downs, rate limits and drain deadlines then come out the same
    however loaded the machine is. Receivers given it stamp requests with it.

    >>> clock = VirtualClock(100.0)
    >>> clock.idle(threading.Event(), 0.5), clock()
    (False, 100.5)
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start  # near real time: HTTP dates

    def __call__(self) -> float:
        return self.now

    def idle(self, event: threading.Event, seconds: float) -> bool:
        """`Deliverer`'s wait: returns at once, the clock `seconds` later (unless set)."""
        if not event.is_set():
            self.now += seconds
        return event.is_set()


def deliverer(
    store: Store,
    sinks: list[Any],
    cfg: DeliveryConfig | None,
    clock: VirtualClock,
    **kwargs: Any,
) -> Deliverer:
    """A started `Deliverer` on `clock`."""
    made = Deliverer(store, sinks, cfg or policy(), clock=clock, idle=clock.idle, **kwargs)
    made.start()
    return made


def deliver(
    store: Store,
    sinks: list[Any],
    cfg: DeliveryConfig | None = None,
    timeout: float = 10.0,
    clock: VirtualClock | None = None,
    **kwargs: Any,
) -> Tally:
    """Drain the outbox to `sinks` until nothing is left to send or `timeout` seconds have
    passed on `clock` (a new VirtualClock by default: only the worker's waits count, so
    the outcome does not depend on how fast the machine is), then close the sinks."""
    clock = clock or VirtualClock()
    worker = deliverer(store, sinks, cfg, clock, **kwargs)
    try:
        return worker.drain(clock() + timeout)
    finally:
        worker.close()


def states(store: Store, sink_name: str) -> dict[str, str]:
    frame = store.delivery_state([sink_name])
    return dict(zip(frame["alert_id"], frame["state"], strict=True))
