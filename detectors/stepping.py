"""The one loop that walks time-ordered events through detection in batches.

Replay, `secretwatch detect` and live detection all step with `step_batches`: a batch
covers `step_us` of event time from where the last one ended, is judged and learned from
(`Detection.run`), and the caller does what it keeps per batch (progress, the identities
learned, the watermark) with what each step yields. Where the events come from is the
caller's: a prepared stream cut at batch ends (`Sliced`) or the live buffer.

>>> cover(0, -1, 10), cover(0, 0, 10), cover(0, 25, 10)
(0, 10, 30)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detectors.alert import Incident
from detectors.engine import Detection
from detectors.events import Events


class BatchSource(Protocol):
    """Where a batch's events come from, in (time, id) order."""

    def take(self, end_us: int) -> Events:
        """The events before `end_us` not taken yet (taking them)."""

    def first_us(self) -> int | None:
        """The time of the earliest event not taken yet, if any."""


@dataclass
class Sliced:
    """A prepared, time-ordered stream cut at batch ends (slices are views)."""

    events: Events
    lo: int = 0

    def take(self, end_us: int) -> Events:
        hi = int(np.searchsorted(self.events.ts_us, end_us))
        part = self.events.slice(self.lo, hi)
        self.lo = hi
        return part

    def first_us(self) -> int | None:
        return int(self.events.ts_us[self.lo]) if self.lo < len(self.events) else None


@dataclass(frozen=True, slots=True)
class Step:
    """One batch judged and learned from: [start_us, end_us), its events, and the
    incidents it opened or added to."""

    start_us: int
    end_us: int
    events: Events
    changed: list[Incident]


def cover(start_us: int, last_us: int, step_us: int) -> int:
    """The end of the batch (of `step_us` from `start_us`) that holds `last_us`; `start_us`
    if that is before the first batch."""
    if last_us < start_us:
        return start_us
    return start_us + ((last_us - start_us) // step_us + 1) * step_us


def step_batches(
    detection: Detection,
    source: BatchSource,
    start_us: int,
    stop_us: int,
    step_us: int,
    skip_silence: bool = False,
) -> Iterator[Step]:
    """Judge and learn from the whole batches in [start_us, stop_us), in order, one step
    per batch. `skip_silence`: a silent stretch (no event before the next batch boundary
    under `min(first event, stop_us)`) is learned from as one batch, as a live stream
    jumps over it."""
    start = start_us
    while start + step_us <= stop_us:
        end = start + step_us
        if skip_silence:
            first = source.first_us()
            until = stop_us if first is None else min(first, stop_us)
            end = max(end, until // step_us * step_us)
        events = source.take(end)
        yield Step(start, end, events, detection.run(events, start, end))
        start = end
