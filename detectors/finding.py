"""What every detector's finding shares, built in one place.

A detector decides who, which window, how strange and why; the rest of a `Finding` follows
from its settings (threshold, severity) and the evidence: the evidence ids, and the time of
the first evidence event.

>>> hour_window(3) == (3 * HOUR_US, 4 * HOUR_US)
True
>>> window(2, 600_000_000)
(1200000000, 1800000000)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from detectors.alert import Finding
from detectors.batch import Batch
from detectors.events import HOUR_US


class Judging(Protocol):
    """A detector's settings, as far as a finding needs them."""

    @property
    def threshold(self) -> float: ...

    @property
    def severity(self) -> str: ...


def window(index: int, width_us: int) -> tuple[int, int]:
    """The `index`-th window of `width_us` microseconds since the epoch: (start, end)."""
    return index * width_us, (index + 1) * width_us


def hour_window(hour: int) -> tuple[int, int]:
    """The hour `hour` (hours since the epoch) as (start, end) in microseconds."""
    return window(hour, HOUR_US)


def finding(
    detector: str,
    cfg: Judging,
    batch: Batch,
    *,
    identity: str,
    span: tuple[int, int],
    evidence: np.ndarray,
    score: float,
    explanation: str,
) -> Finding:
    """The finding of `detector` on `identity` in the window `span` (start, end), backed by
    the events of `batch` at the positions `evidence`; `score` is kept as given (a detector
    that wants a plain float converts it). The people behind a shared identity in the
    evidence (SSO or assumed-role sessions named for a person) close the explanation."""
    people = sorted({a for a in batch.ev.actor[evidence] if a})
    if people:
        more = f" and {len(people) - 3} more" if len(people) > 3 else ""
        explanation += f" Sessions of {', '.join(people[:3])}{more}."
    return Finding(
        detector=detector,
        identity=identity,
        start_us=span[0],
        end_us=span[1],
        at_us=batch.first_us(evidence),
        score=score,
        threshold=cfg.threshold,
        severity=cfg.severity,
        explanation=explanation,
        evidence=batch.ids(evidence),
    )
