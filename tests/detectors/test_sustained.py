"""Sustained deviations: a moderate rise held for hours, and denials spread thinly over
hours, streamed hour by hour through detection after the small world's training window
(the last-24-hours ring they read is filled by the stream itself)."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from world import START, TRAIN_DAYS, after, frame, row, us, world

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.engine import Detection, train
from detectors.events import HOUR_US
from detectors.settings import DetectorsConfig

SVC = "orders/orders-api"
HOURS = 24


@pytest.fixture(scope="module")
def history_and_day() -> tuple[list, list]:
    """The world's training window, and its next day of normal traffic."""
    rows = world(TRAIN_DAYS + 1)
    cut = us(after(0))
    return [r for r in rows if r.ts_us < cut], [r for r in rows if r.ts_us >= cut]


@pytest.fixture(scope="module")
def flaky_trained(history_and_day) -> Baselines:
    """The world plus `flaky-svc`, denied about five times an hour, every hour."""
    history, _ = history_and_day
    rng = random.Random(5)
    extra = [
        row(
            "flaky-svc",
            START + timedelta(hours=h, seconds=rng.randrange(3600)),
            "secret/flaky/x",
            outcome="denied" if k < 5 else "success",
            ip="10.244.9.9",
        )
        for h in range(TRAIN_DAYS * 24)
        for k in range(8)
    ]
    return train(frame(sorted(history + extra, key=lambda r: r.ts_us)), DetectorsConfig())


def copy(base: Baselines) -> Baselines:
    return Baselines.from_rows(base.to_rows(), **base.meta())


def stream(base: Baselines, rows: list, cfg: DetectorsConfig | None = None) -> list[Finding]:
    """Every finding of the day after training, judged an hour at a time (on a copy of the
    baselines: detection learns as it goes)."""
    detection = Detection(copy(base), cfg or DetectorsConfig())
    ev = frame(sorted(rows, key=lambda r: r.ts_us))
    start = us(after(0))
    for h in range(HOURS):
        lo, hi = np.searchsorted(ev.ts_us, [start + h * HOUR_US, start + (h + 1) * HOUR_US])
        detection.run(ev.slice(int(lo), int(hi)), start + h * HOUR_US, start + (h + 1) * HOUR_US)
    return [f for i in detection.incidents() for f in i.findings]


def of(findings: list[Finding], name: str) -> list[Finding]:
    return [f for f in findings if f.detector == name]


def extra_reads(per_hour: int, first: int, hours: int, ident: str = SVC) -> list:
    rng = random.Random(per_hour * 100 + first)
    return [
        row(ident, after(first + h) + timedelta(seconds=rng.randrange(3600)), "secret/orders/db")
        for h in range(hours)
        for _ in range(per_hour)
    ]


def denials(per_hour: int, first: int, hours: int, ident: str = SVC) -> list:
    return [
        row(
            ident,
            after(first + h) + timedelta(minutes=k * 60 / per_hour, seconds=7),
            f"secret/payments/k{h}-{k}",
            outcome="denied",
        )
        for h in range(hours)
        for k in range(per_hour)
    ]


def test_a_normal_day_is_quiet(trained, history_and_day):
    _, day = history_and_day
    found = stream(trained, day)
    assert of(found, "sustained_rate") == [] and of(found, "sustained_denied") == []


def test_four_times_the_rate_held_four_hours(trained, history_and_day):
    _, day = history_and_day
    # orders-api makes about 6 requests an hour; 18 more is about 4x, from 10:00 to 14:00.
    attack = extra_reads(18, 10, 4)
    found = of(stream(trained, day + attack), "sustained_rate")
    assert found, "a 4x rate held 4 hours is found"
    first = min(found, key=lambda f: f.end_us)
    assert first.identity == SVC
    assert first.end_us - first.start_us >= 3 * HOUR_US  # found once it was held 3 hours
    assert first.start_us == us(after(10))
    assert "x its seasonal norm" in first.explanation and "in the 3 hours from" in first.explanation
    ids = {r.event_id for r in attack}
    evidence = {e for f in found for e in f.evidence}
    assert evidence & ids and all(f.start_us >= us(after(10)) for f in found)


def test_a_single_hour_at_four_times_is_left_to_rate_spike(trained, history_and_day):
    _, day = history_and_day
    assert of(stream(trained, day + extra_reads(18, 10, 1)), "sustained_rate") == []
    # Two hours are not yet "held".
    assert of(stream(trained, day + extra_reads(18, 10, 2)), "sustained_rate") == []


def test_a_mild_rise_held_all_day_is_normal_variation(trained, history_and_day):
    _, day = history_and_day
    # +50% for 12 hours.
    assert of(stream(trained, day + extra_reads(3, 8, 12)), "sustained_rate") == []


def test_thresholds_are_configurable(trained, history_and_day):
    _, day = history_and_day
    attack = extra_reads(18, 10, 4)
    cfg = DetectorsConfig()
    strict = cfg.model_copy(
        update={"sustained_rate": cfg.sustained_rate.model_copy(update={"min_hours": 5})}
    )
    assert of(stream(trained, day + attack, strict), "sustained_rate") == []


def test_denials_one_every_ten_minutes_for_hours(trained, history_and_day):
    _, day = history_and_day
    attack = denials(6, 9, 4)
    found = of(stream(trained, day + attack), "sustained_denied")
    assert found and {f.identity for f in found} == {SVC}
    first = min(found, key=lambda f: f.end_us)
    assert "denied 18 times in the 3 hours from" in first.explanation
    assert "about one every 10 minutes" in first.explanation
    assert {e for f in found for e in f.evidence} <= {r.event_id for r in attack}
    # Paced under denied_burst's floors: it alone sees it.
    assert of(stream(trained, day + attack), "denied_burst") == []


def test_denials_for_two_hours_or_at_one_an_hour_are_not_sustained(trained, history_and_day):
    _, day = history_and_day
    assert of(stream(trained, day + denials(6, 9, 2)), "sustained_denied") == []
    assert of(stream(trained, day + denials(1, 9, 8)), "sustained_denied") == []


def test_a_service_always_denied_has_that_in_its_norm(flaky_trained, history_and_day):
    _, day = history_and_day
    rng = random.Random(9)
    usual = [
        row(
            "flaky-svc",
            after(h) + timedelta(seconds=rng.randrange(3600)),
            "secret/flaky/x",
            outcome="denied",
            ip="10.244.9.9",
        )
        for h in range(HOURS)
        for _ in range(6)
    ]
    found = stream(flaky_trained, day + usual)
    assert of(found, "sustained_denied") == []
    # The same pace from an identity denied about never is found.
    odd = [r._replace(identity=SVC, event_id=r.event_id + "-o") for r in usual]
    assert of(stream(flaky_trained, day + odd), "sustained_denied")


def test_the_last_day_ring_survives_a_save_and_load(trained, history_and_day):
    _, day = history_and_day
    base = copy(trained)
    base.update(frame(day))
    again = copy(base)
    assert np.array_equal(again.recent, base.recent)
    assert np.array_equal(again.recent_hour, base.recent_hour)
    assert np.array_equal(again.denied_events, base.denied_events)
    r = base.index[SVC]
    hour = us(after(23)) // HOUR_US
    assert base.recent_hour[r, hour % 24] == hour
    assert base.recent[r, hour % 24, 0] == sum(
        1 for x in day if x.identity == SVC and x.ts_us // HOUR_US == hour
    )
