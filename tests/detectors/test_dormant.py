from __future__ import annotations

from datetime import timedelta

import pytest
from judge import judge
from world import START, TRAIN_DAYS, frame, row, world

from detectors.engine import train
from detectors.settings import DetectorsConfig


@pytest.fixture(scope="module")
def with_retired():
    """`legacy-job` ran daily for the first 14 days, then fell silent."""
    rows = world()
    rows += [
        row("legacy-job", START + timedelta(days=d, hours=4), "secret/legacy/db", ip="10.0.9.9")
        for d in range(14)
    ]
    return train(frame(rows), DetectorsConfig())


def test_identity_back_after_a_long_silence(with_retired):
    back = START + timedelta(days=TRAIN_DAYS + 20, hours=11)
    [finding] = judge("dormant", with_retired, [row("legacy-job", back, "secret/legacy/db")])
    assert finding.score >= 1
    assert "62 days of silence" in finding.explanation  # last day 13, back on day 76
    assert "last seen 2026-03-15" in finding.explanation


def test_weekend_and_holiday_gaps_are_not_dormancy(trained):
    # alice (weekdays only) coming back after a 9-day holiday is nothing.
    back = START + timedelta(days=TRAIN_DAYS + 9, hours=10)
    assert judge("dormant", trained, [row("alice", back, kind="human")]) == []


def test_the_silence_needed_grows_with_the_identitys_own_gaps(with_retired):
    back = START + timedelta(days=TRAIN_DAYS + 20, hours=11)
    assert judge("dormant", with_retired, [row("legacy-job", back)], min_days=90) == []
