from __future__ import annotations

from world import after, frame, row, us

from detectors.engine import Detection
from detectors.events import HOUR_US
from detectors.settings import DetectorsConfig
from detectors.stepping import Sliced, cover, step_batches

STEP = 5 * 60_000_000


def test_cover_ends_at_the_batch_holding_the_last_event():
    assert cover(100, 99, 10) == 100  # nothing at or after the start
    assert [cover(100, last, 10) for last in (100, 109, 110)] == [110, 110, 120]


def test_every_event_is_in_exactly_one_batch_in_order(trained):
    rows = [row("alice", after(h), ip="192.168.10.4", kind="human") for h in (0.01, 0.02, 1.5)]
    ev = frame(rows)
    start = us(after(0))
    steps = list(step_batches(Detection(trained, DetectorsConfig()), Sliced(ev), start,
                              cover(start, int(ev.ts_us[-1]), STEP), STEP))  # fmt: skip
    assert [s.end_us - s.start_us for s in steps] == [STEP] * len(steps)
    assert steps[0].start_us == start and steps[-1].end_us > int(ev.ts_us[-1])
    seen = [e for s in steps for e in s.events.event_id]
    assert seen == list(ev.event_id)
    for s in steps:
        assert all(s.start_us <= t < s.end_us for t in s.events.ts_us)


def test_a_silent_stretch_is_learned_in_one_step(trained):
    rows = [row("alice", after(h), ip="192.168.10.4", kind="human") for h in (0.01, 3.01)]
    ev = frame(rows)
    start = us(after(0))
    steps = list(step_batches(Detection(trained, DetectorsConfig()), Sliced(ev), start,
                              start + 4 * HOUR_US, STEP, skip_silence=True))  # fmt: skip
    assert [(s.start_us - start, s.end_us - start) for s in steps[:3]] == [
        (0, STEP),
        (STEP, 3 * HOUR_US),  # up to the boundary before the next event
        (3 * HOUR_US, 3 * HOUR_US + STEP),
    ]
    assert steps[-1].end_us == start + 4 * HOUR_US
