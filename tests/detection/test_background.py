"""The whole judging of an open batch in a process of its own."""

from __future__ import annotations

import os

import pytest

from pipeline.detection.background import WholeJudging


def test_what_it_found_is_taken_once_and_only_when_done():
    release, go = os.pipe()  # the judging runs in a fork: only a file reaches it

    def judge(ev, start_us, end_us):
        assert os.read(release, 1) == b"!"
        return [ev, start_us, end_us, os.getpid()]

    judging = WholeJudging(monotonic=iter([1.0, 3.5]).__next__)
    judging.start(lambda: "events", judge, 10, 20)
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
    assert done.findings[3] != os.getpid()  # judged in another process
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


def test_a_fork_that_dies_without_a_word_is_an_error():
    def judge(ev, start_us, end_us):
        os._exit(3)  # killed, say, by the kernel for memory

    judging = WholeJudging()
    judging.start(lambda: None, judge, 0, 1)
    with pytest.raises(RuntimeError, match="without a word"):
        judging.wait()
