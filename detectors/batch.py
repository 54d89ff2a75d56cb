"""What every detector receives: one batch of prepared events, with each event's baseline
row and whether that identity is past cold start, computed once for all detectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.baseline import Baselines
from detectors.events import DAYS, Events, group
from detectors.settings import DetectorsConfig


@dataclass
class Batch:
    ev: Events  # prepared events, time-ordered
    rows: np.ndarray  # each event's baseline row, -1 for identities never seen
    warm: np.ndarray  # each event's identity has enough history to be judged against it
    start_us: int
    end_us: int
    cfg: DetectorsConfig

    @classmethod
    def of(
        cls, base: Baselines, ev: Events, start_us: int, end_us: int, cfg: DetectorsConfig
    ) -> Batch:
        rows = base.ids(ev.identity)
        warm = base.warm(
            rows, start_us, cfg.cold_start.min_active_days, cfg.cold_start.min_span_days
        )
        return cls(ev, rows, warm, start_us, end_us, cfg)

    def groups(
        self, mask: np.ndarray, by: str | None = None
    ) -> Iterator[tuple[str, int, np.ndarray]]:
        """(identity, value of `by`, positions) for the events under `mask`, grouped by
        identity and, if given, by the time key `by` (`uhour` or `win`)."""
        key = self.ev.icode << 40
        if by is not None:
            key = key | getattr(self.ev, by)
        for pos in group(key, np.flatnonzero(mask)):
            first = pos[0]
            yield self.ev.identity[first], int(getattr(self.ev, by)[first]) if by else 0, pos

    def ids(self, positions: np.ndarray) -> tuple[str, ...]:
        return tuple(self.ev.event_id[positions])

    def first_us(self, positions: np.ndarray) -> int:
        return int(self.ev.ts_us[positions].min())

    def when(self, us: int) -> str:
        return when(us, self.cfg.timezone)


def when(us: int, tz: str) -> str:
    """`03:10 on Sunday 2026-05-03` in the time zone `tz`."""
    t = pd.Timestamp(us, unit="us", tz="UTC").tz_convert(tz)
    return f"{t:%H:%M} on {DAYS[t.weekday()]} {t:%Y-%m-%d}"


def plural(n: int, word: str) -> str:
    """`1 secret`, `4 secrets`.

    >>> plural(1, "secret"), plural(4, "secret")
    ('1 secret', '4 secrets')
    """
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def sample(values: list[str] | set[str], limit: int = 3) -> str:
    """A few example values for an explanation: `a, b, c and 4 more`."""
    ordered = sorted(values)
    shown = ", ".join(ordered[:limit])
    return shown if len(ordered) <= limit else f"{shown} and {len(ordered) - limit} more"
