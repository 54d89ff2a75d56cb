"""Judging a large open batch whole in a thread of its own, so that judging each poll's
new events (`Detection.peek_new`) goes on meanwhile: a root token seen while half a
million events are judged again is raised within a poll, not after them.

The thread only computes findings, from events cut out of the buffer when it started
(immutable arrays) and baselines that nothing changes while it runs: the caller waits for
it (`wait`) before learning from a batch. The caller applies what it found
(`Detection.apply_peek`) in its own thread, so incidents change in one thread only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from detectors.alert import Finding
from detectors.batch import Batch
from detectors.events import Events

Judge = Callable[[Events, int, int], tuple[Batch | None, list[Finding]]]


@dataclass
class Found:
    """What one whole judging found, and what it took (seconds, for the throttle)."""

    start_us: int
    batch: Batch | None
    findings: list[Finding]
    took: float


@dataclass
class WholeJudging:
    """At most one whole judging at a time."""

    monotonic: Callable[[], float] = time.monotonic
    _thread: threading.Thread | None = None
    _done: Found | None = None
    _error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, cut: Callable[[], Events], judge: Judge, start_us: int, end_us: int) -> None:
        """Judge `cut()` (the batch's events, made in the thread: merging them costs in
        proportion to the batch too) over [start_us, end_us)."""

        def work() -> None:
            began = self.monotonic()
            try:
                batch, findings = judge(cut(), start_us, end_us)
                done = Found(start_us, batch, findings, self.monotonic() - began)
                with self._lock:
                    self._done = done
            except BaseException as exc:  # raised in the caller's thread by `take`
                with self._lock:
                    self._error = exc

        self._thread = threading.Thread(target=work, name="detection-whole", daemon=True)
        self._thread.start()

    def take(self) -> Found | None:
        """What a finished judging found (once), or None while it runs or if none ran."""
        thread = self._thread
        if thread is None or thread.is_alive():
            return None
        thread.join()
        self._thread = None
        with self._lock:
            done, error, self._done, self._error = self._done, self._error, None, None
        if error is not None:
            raise error
        return done

    def join(self) -> None:
        """Wait for a judging in flight to finish (what it found stays for `take`)."""
        if self._thread is not None:
            self._thread.join()

    def wait(self) -> Found | None:
        """Wait for a judging in flight to finish; what it found."""
        self.join()
        return self.take()
