"""The part of a finding every detector shares (`detectors.finding`)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from world import after, frame, row, us

from detectors.baseline import Baselines
from detectors.batch import Batch
from detectors.events import HOUR_US
from detectors.finding import finding, hour_window, window
from detectors.settings import DetectorsConfig, RootToken


def test_a_finding_takes_its_threshold_severity_evidence_and_first_time_as_given(
    trained: Baselines,
) -> None:
    rows = [row("root", after(3) + timedelta(minutes=m), kind="root") for m in (40, 5, 20)]
    ev = frame(rows)
    start = us(after(3)) // HOUR_US * HOUR_US
    batch = Batch.of(trained, ev, start, start + HOUR_US, DetectorsConfig())
    later = np.flatnonzero(ev.ts_us > us(after(3) + timedelta(minutes=10)))
    made = finding(
        "root_token",
        RootToken(threshold=0.5, severity="high"),
        batch,
        identity="root",
        span=hour_window(start // HOUR_US),
        evidence=later,
        score=0.75,
        explanation="why.",
    )
    assert (made.detector, made.identity, made.score, made.explanation) == (
        "root_token",
        "root",
        0.75,
        "why.",
    )
    assert (made.start_us, made.end_us) == (start, start + HOUR_US)
    assert (made.threshold, made.severity) == (0.5, "high")
    assert made.evidence == tuple(ev.event_id[later])
    assert made.at_us == us(after(3) + timedelta(minutes=20))  # the first of its evidence


def test_windows_are_counted_from_the_epoch() -> None:
    assert window(0, 10) == (0, 10)
    assert window(7, 600) == (4200, 4800)
    assert hour_window(5) == window(5, HOUR_US)
