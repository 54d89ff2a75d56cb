"""The whole judging of an open batch in a thread of its own."""

from __future__ import annotations

import threading

import pytest

from pipeline.detection.background import WholeJudging


def test_what_it_found_is_taken_once_and_only_when_done():
    release = threading.Event()

    def judge(ev, start_us, end_us):
        assert release.wait(10)
        return None, [ev, start_us, end_us]

    judging = WholeJudging(monotonic=iter([1.0, 3.5]).__next__)
    judging.start(lambda: "events", judge, 10, 20)
    assert judging.running and judging.take() is None  # still running
    release.set()
    judging.join()
    done = judging.take()
    assert done is not None and (done.start_us, done.findings, done.took) == (
        10,
        ["events", 10, 20],
        2.5,
    )
    assert not judging.running and judging.take() is None and judging.wait() is None


def test_an_error_in_the_thread_is_raised_in_the_callers():
    def judge(ev, start_us, end_us):
        raise ValueError("broken baselines")

    judging = WholeJudging()
    judging.start(lambda: None, judge, 0, 1)
    with pytest.raises(ValueError, match="broken baselines"):
        judging.wait()
    assert not judging.running
