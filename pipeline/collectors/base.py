"""What every collector is and what it hands its input to.

A collector receives audit records on one backend's own delivery path (a socket, an HTTP
endpoint, a queue) and passes them to its `Intake`, which appends them to the collector's
durable spool; only then may the collector acknowledge the sender (answer 2xx, delete the
queue message, commit the offset). Parsing, storing and detection happen later, from the
spool, so a slow store never makes a sender wait or drop events.

Input the collector cannot even frame (a body that is not JSON, a request too large) is
`reject`ed: it becomes a dead letter naming the collector, on disk before the collector
answers (`rejected.py`), and the stream goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.collectors.rejected import Rejected
from pipeline.collectors.spool import Spool
from pipeline.redact import redact_raw
from pipeline.sources.base import DeadLetter


class Collector(Protocol):
    """One configured collector. `start` binds or connects (raising `ConfigError` with the
    reason when it cannot) and returns; `stop` stops accepting and returns once the work
    in flight is spooled."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def listening(self) -> bool:
        """True once it accepts input (for /healthz)."""
        ...


@dataclass
class IntakeCounts:
    """What one collector has taken in, for the metrics."""

    requests: int = 0  # requests, messages or socket reads that carried records
    records: int = 0  # lines spooled
    rejected: int = 0  # inputs turned into dead letters at the door
    unauthorized: int = 0  # requests refused for missing or wrong credentials


@dataclass
class Intake:
    """Where a collector puts what it received: `accept` is durable when it returns."""

    collector: str
    spool: Spool
    wake: Callable[[], None] = lambda: None  # tells the service's reader there is more
    counts: IntakeCounts = field(default_factory=IntakeCounts)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rejected: Rejected = field(init=False)

    def __post_init__(self) -> None:
        self._rejected = Rejected(self.spool.folder)

    def accept(self, lines: Sequence[bytes], sync: bool = True) -> None:
        """Spool `lines` (one record or document each, no newline inside), fsynced unless
        the sender gets no acknowledgement (`sync=False`: see `Spool.append`)."""
        if not lines:
            return
        self.spool.append(lines, sync)
        with self._lock:
            self.counts.requests += 1
            self.counts.records += len(lines)
        self.wake()

    def accept_block(self, data: bytes, lines: int, sync: bool = True) -> None:
        """Spool `data`: `lines` whole lines, each ending in a newline (`Spool.append_block`)."""
        if not lines:
            return
        self.spool.append_block(data, lines, sync)
        with self._lock:
            self.counts.requests += 1
            self.counts.records += lines
        self.wake()

    def reject(self, where: str, reason: str, raw: bytes, fmt: str | None = None) -> None:
        """A dead letter for input that never reached the spool; redacted like any other,
        and on disk when this returns (the collector answers its sender next)."""
        letter = DeadLetter(
            f"collector {self.collector}: {where}", 0, 0, reason, redact_raw(raw), fmt
        )
        self._rejected.append(letter)
        with self._lock:
            self.counts.rejected += 1
        self.wake()

    def unauthorized(self) -> None:
        with self._lock:
            self.counts.unauthorized += 1

    def dead_waiting(self) -> bool:
        """Whether dead letters wait to be stored."""
        return self._rejected.waiting()

    def take_dead(self) -> list[DeadLetter]:
        """The dead letters not stored yet; the same again until `dead_stored`."""
        return self._rejected.take()

    def dead_stored(self) -> None:
        """The letters `take_dead` returned are stored."""
        self._rejected.taken()
