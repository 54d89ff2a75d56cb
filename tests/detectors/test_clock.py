from __future__ import annotations

from detectors.clock import BatchClock


def test_the_clock_starts_at_the_first_batch_and_keeps_it():
    clock = BatchClock(step_us=10, lateness_us=3)
    assert clock.open_batch() is None
    assert clock.begin(27) == 20
    assert clock.begin(5) == 20  # started already
    assert clock.open_batch() == (20, 30)


def test_the_stream_clock_is_the_newest_event_less_lateness_or_the_callers_bound():
    clock = BatchClock(step_us=10, lateness_us=3)
    assert clock.now(50) == 47
    assert clock.now(50, given_us=40) == 40
    assert clock.now(50, given_us=60) == 50  # never past the newest event
