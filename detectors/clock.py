"""The batch clock of a live stream: where learning has got, and how far event time has.

Time is event time. Batches of `step_us` are learned from once the stream's clock has
passed their end; the clock is the newest event less `lateness_us`, or the lower bound a
caller passes (the slowest partition's progress). `start_us` is the start of the first
batch not learned from yet: the watermark a snapshot stores.

>>> clock = BatchClock(step_us=10, lateness_us=5)
>>> clock.begin(23), clock.open_batch(), clock.now(newest_us=40), clock.now(40, given_us=30)
(20, (20, 30), 35, 30)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BatchClock:
    step_us: int
    lateness_us: int
    start_us: int | None = None  # first batch not learned from yet

    def begin(self, first_us: int) -> int:
        """Start at the batch holding `first_us` unless started already; the start."""
        if self.start_us is None:
            self.start_us = self.align(first_us)
        return self.start_us

    def align(self, us: int) -> int:
        """The start of the batch boundary at or before `us`."""
        return us // self.step_us * self.step_us

    def now(self, newest_us: int, given_us: int | None = None) -> int:
        """The stream's clock: the caller's bound (never past the newest event), else the
        newest event less the lateness allowed."""
        if given_us is not None:
            return min(given_us, newest_us)
        return newest_us - self.lateness_us

    def open_batch(self) -> tuple[int, int] | None:
        """[start, end) of the first batch not learned from, if the stream has begun."""
        if self.start_us is None:
            return None
        return self.start_us, self.start_us + self.step_us
