"""Judging a large open batch whole in a process of its own, so that judging each poll's
new events (`Detection.peek_new`) goes on meanwhile: a root token seen while half a
million events are judged again is raised within a poll, not after them.

A thread would not do: cutting out and judging a million events holds the interpreter
lock for most of a second at a time, and the poll's events, the reader's hand-over and
storing all wait for it (the p99 of bench_serve's (b) measured it). So the judging runs in
a fork of this process: it reads the events cut out of the buffer when it started
(immutable arrays) and the baselines as they were then, which nothing changes while it
runs anyway (the caller waits for it, `wait`, before learning from a batch). It sends back
only its findings, pickled; a thread here reads them (blocked on the pipe, it holds no
lock). The caller applies them (`Detection.apply_peek`) in its own thread, so incidents
change in one thread only. The fork dies with this process (`_die_with_parent`): its
findings would have no reader, and a fork left behind would hold this process's memory.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from detectors.alert import Finding
from detectors.events import Events

log = logging.getLogger(__name__)

FORK_SECONDS = 300.0
_PR_SET_PDEATHSIG = 1  # prctl(2)

Judge = Callable[[Events, int, int], list[Finding]]


@dataclass
class Found:
    """What one whole judging found, and what it took (seconds, for the throttle)."""

    start_us: int
    findings: list[Finding]
    took: float


@dataclass
class WholeJudging:
    """At most one whole judging at a time."""

    monotonic: Callable[[], float] = time.monotonic
    # A fork still judging after this long is killed (found nothing): learning waits for
    # it, so one that hung would stop detection. Judging a million events takes seconds.
    timeout_seconds: float = FORK_SECONDS
    _thread: threading.Thread | None = None
    _done: Found | None = None
    _error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, cut: Callable[[], Events], judge: Judge, start_us: int, end_us: int) -> bool:
        """Judge `cut()` (the batch's events, made in the fork: merging them costs in
        proportion to the batch too) over [start_us, end_us). False if no fork could be
        made (out of memory or processes): then the caller judges the batch itself."""
        began = self.monotonic()
        parent = os.getpid()
        read, write = os.pipe()
        try:
            # Python 3.12 warns of forking with threads running; the fork runs only the
            # detectors and pickle, no code of those threads, and ends with `os._exit`.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as exc:
            os.close(read)
            os.close(write)
            log.warning("event=whole_judging_not_forked error=%s", exc.strerror or exc)
            return False
        if pid == 0:  # the fork: judge, send what was found, and end without cleaning up
            os.close(read)
            _die_with_parent(parent)
            _judge_and_exit(write, lambda: judge(cut(), start_us, end_us))
        os.close(write)

        def work() -> None:
            sent = _read_until(read, time.monotonic() + self.timeout_seconds)
            if sent is None:
                os.kill(pid, signal.SIGKILL)
                sent = b""
            _, status = os.waitpid(pid, 0)
            took = self.monotonic() - began
            try:
                outcome, value = pickle.loads(sent)  # noqa: S301 - our own fork's
            except Exception:  # killed (the kernel's OOM killer, say): found nothing
                log.warning("event=whole_judging_lost status=%s", status)
                outcome, value = "found", []
            with self._lock:
                if outcome == "found":
                    self._done = Found(start_us, value, took)
                else:
                    self._error = value

        self._thread = threading.Thread(target=work, name="detection-whole", daemon=True)
        self._thread.start()
        return True

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


def _read_until(fd: int, deadline: float) -> bytes | None:
    """All a pipe carries until its writer closes it (and close it here), or None at the
    deadline (monotonic seconds)."""
    parts: list[bytes] = []
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                return None
            part = pipe.read(1 << 16)
            if not part:
                return b"".join(parts)
            parts.append(part)


def _die_with_parent(parent: int) -> None:
    """In the fork, on Linux: the kernel kills it when the thread that forked it ends (the
    detection loop's, which lives as long as its process), say when that process is
    killed mid-judging. Elsewhere a fork outlives it until its judging ends. A parent
    that died before this was set is caught by its pid."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _judge_and_exit(write: int, judging: Callable[[], list[Finding]]) -> None:
    """In the fork: send ("found", findings) or ("error", exception) and exit at once
    (`os._exit`: no handlers, buffers or finalizers of the parent's run here)."""
    gc.disable()  # short-lived: collecting would only copy the parent's pages
    os.nice(10)  # on a busy core, storing and judging each poll come first
    try:
        try:
            sent = pickle.dumps(("found", judging()))
        except BaseException as exc:  # raised in the caller's thread by `take`
            try:
                sent = pickle.dumps(("error", exc))
            except Exception:
                sent = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        with os.fdopen(write, "wb") as pipe:
            pipe.write(sent)
    finally:
        os._exit(0)
