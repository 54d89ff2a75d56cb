"""The whole judging of an open batch in a process of its own."""

from __future__ import annotations

import os

import pytest

from pipeline.detection.background import WholeJudging


def test_what_it_found_is_taken_once_and_only_when_done():
    release, go = os.pipe()  # the judging runs in a fork: only a file reaches it

    def judge(ev, start_us, end_us):
        assert os.read(release, 1) == b"!"
        return [ev, start_us, end_us, os.getpid(), os.nice(0)]

    judging = WholeJudging(monotonic=iter([1.0, 3.5]).__next__)
    assert judging.start(lambda: "events", judge, 10, 20)
    try:
        assert judging.running and judging.take() is None  # still running
    finally:
        os.write(go, b"!")
    judging.join()
    done = judging.take()
    assert done is not None and (done.start_us, done.findings[:3], done.took) == (
        10,
        ["events", 10, 20],
        2.5,
    )
    assert done.findings[3] != os.getpid()  # judged in another process,
    assert done.findings[4] == min(19, os.nice(0) + 10)  # which yields a busy core
    assert not judging.running and judging.take() is None and judging.wait() is None
    os.close(release)
    os.close(go)


def test_an_error_in_the_fork_is_raised_in_the_callers():
    def judge(ev, start_us, end_us):
        raise ValueError("broken baselines")

    judging = WholeJudging()
    judging.start(lambda: None, judge, 0, 1)
    with pytest.raises(ValueError, match="broken baselines"):
        judging.wait()
    assert not judging.running


def test_a_fork_that_dies_without_a_word_found_nothing(caplog: pytest.LogCaptureFixture):
    """Killed (by the kernel's OOM killer, say): logged, and the batch is judged whole
    again next time; the detection process goes on."""

    def judge(ev, start_us, end_us):
        os._exit(3)

    judging = WholeJudging()
    assert judging.start(lambda: None, judge, 5, 6)
    done = judging.wait()
    assert done is not None and (done.start_us, done.findings) == (5, [])
    assert "event=whole_judging_lost status=768" in caplog.text  # exit status 3


def test_no_fork_to_be_had_is_said(monkeypatch: pytest.MonkeyPatch):
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    judging = WholeJudging()
    assert not judging.start(lambda: None, lambda *_: [], 0, 1)
    assert not judging.running and judging.wait() is None


def test_a_fork_that_hangs_is_killed_at_its_deadline(caplog: pytest.LogCaptureFixture):
    """Learning waits for a whole judging: one that never ends must not stop detection."""
    never, _keep = os.pipe()  # nothing is ever written: the fork waits for good

    def judge(ev, start_us, end_us):
        os.read(never, 1)
        return []

    judging = WholeJudging(timeout_seconds=0.3)
    assert judging.start(lambda: None, judge, 7, 8)
    done = judging.wait()
    assert done is not None and (done.start_us, done.findings) == (7, [])
    assert "event=whole_judging_lost status=9" in caplog.text  # SIGKILL
    os.close(never)
    os.close(_keep)
