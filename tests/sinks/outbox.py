"""Helpers for delivery tests: real alerts in a real store, sink configs, a fast policy."""

from __future__ import annotations

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
        incident.add(Finding(name, identity, start, start + HOUR_US, to_micros(at), 1.0, 0.5,
                             level, f"{identity} tripped {name} at {at}.", evidence))
    return incident.alert().model_dump(mode="json")


def save(store: Store, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    store.save_detection([], {}, list(alerts), version=1)
    return list(alerts)


def many(store: Store, n: int, severity: str = "critical") -> list[dict[str, Any]]:
    """`n` alerts on distinct identities, an hour apart."""
    alerts = [
        alert(f"svc-{i:04d}", f"2026-05-01T{i % 24:02d}:{(i // 24) % 60:02d}:00Z",
              severity=severity, evidence=(f"e{i}",))
        for i in range(n)
    ]
    return save(store, *alerts)


def sink(**fields: Any) -> Any:
    """A validated `sinks:` entry."""
    return TypeAdapter(SinkConfig).validate_python(fields)


def policy(**overrides: Any) -> DeliveryConfig:
    """Delivery settings that keep tests fast: short polls, back-offs and cool-downs."""
    base: dict[str, Any] = {
        "poll_seconds": 0.02, "backoff_base": timedelta(milliseconds=50),
        "backoff_max": timedelta(milliseconds=200), "breaker_failures": 5,
        "breaker_cooldown": timedelta(milliseconds=300), "suppression_window": 0,
        "max_attempts": 50,
    }
    return DeliveryConfig.model_validate({**base, **overrides})


def deliver(
    store: Store, sinks: list[Any], cfg: DeliveryConfig | None = None, timeout: float = 10.0,
    **kwargs: Any,
) -> Tally:
    """Drain the outbox to `sinks` (bounded by `timeout`) and close the sinks."""
    deliverer = Deliverer(store, sinks, cfg or policy(), **kwargs)
    deliverer.start()
    try:
        return deliverer.drain(time.time() + timeout)
    finally:
        deliverer.close()


def states(store: Store, sink_name: str) -> dict[str, str]:
    frame = store.delivery_state([sink_name])
    return dict(zip(frame["alert_id"], frame["state"], strict=True))
