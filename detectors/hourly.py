"""The last hours of each identity in a batch, and what its history expects of them: what
the sustained detectors compare. Observed counts come from the baselines' last-24-hours
ring (all events, evidence of alerts included) plus the batch being judged; expectations
from the rate history of earlier weeks, which never learned from alerts. Everything is
vectorized over identities and hours: no loop over events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.baseline import Baselines
from detectors.batch import Batch
from detectors.events import DAY_US, HOUR_US, WEEK_US

# For each hour of the day: that hour +-1 on each of the seven days, as hours of the week.
_SAME_HOUR = np.array(
    [[(d * 24 + h + k) % 168 for d in range(7) for k in (-1, 0, 1)] for h in range(24)]
)
_NEAR = np.array([-1, 0, 1])


@dataclass(frozen=True)
class Recent:
    """For each warm identity with events in the batch: its last `hours` UTC hours up to the
    last one the batch reaches for it (oldest first), with requests and denials in each."""

    identity: np.ndarray  # (m,) names
    rows: np.ndarray  # (m,) baseline rows
    hours: np.ndarray  # (m, L) absolute UTC hours
    requests: np.ndarray  # (m, L)
    denied: np.ndarray  # (m, L)
    covered: np.ndarray  # (m,) share of the last hour the batch has seen (0-1]
    member: np.ndarray  # (n,) which identity each of `every` belongs to
    every: np.ndarray  # (n,) the batch positions of their events

    def positions(self, i: int) -> np.ndarray:
        """Identity `i`'s events in the batch."""
        found: np.ndarray = self.every[self.member == i]
        return found


def recent(base: Baselines, batch: Batch, hours: int) -> Recent | None:
    ev = batch.ev
    every = np.flatnonzero(batch.warm)
    if not len(every):
        return None
    _, first, member = np.unique(ev.icode[every], return_index=True, return_inverse=True)
    rows = batch.rows[every[first]].astype(np.int64)
    end = np.zeros(len(first), np.int64)
    np.maximum.at(end, member, ev.uhour[every])
    span = end[:, None] - np.arange(hours - 1, -1, -1)[None, :]
    slot = span % 24
    held = base.recent_hour[rows[:, None], slot] == span
    requests = np.where(held, base.recent[rows[:, None], slot, 0], 0).astype(np.int64)
    denied = np.where(held, base.recent[rows[:, None], slot, 1], 0).astype(np.int64)
    column = ev.uhour[every] - span[member, 0]
    inside = column >= 0
    np.add.at(requests, (member[inside], column[inside]), 1)
    np.add.at(denied, (member[inside], column[inside]), ev.denied[every][inside].astype(np.int64))
    covered = np.clip((batch.end_us - end * HOUR_US) / HOUR_US, 1 / 60, 1.0)
    names = ev.identity[every[first]]
    return Recent(names, rows, span, requests, denied, covered, member, every)


def weekly_requests(base: Baselines, rows: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """The weekly half of `expected_requests` alone (a lower bound of it, and cheaper)."""
    return _expected(base, rows, hours, 0.0)


def expected_requests(
    base: Baselines, rows: np.ndarray, hours: np.ndarray, daily_weight: float
) -> np.ndarray:
    """Requests expected in each UTC hour of `hours` (same shape as `rows`): the mean of the
    same weekday hour (+-1) in the earlier weeks of the rate history, or `daily_weight` x
    the mean of the same hour (+-1) on any day of them, whichever is larger. NaN where the
    identity has no earlier week yet."""
    return _expected(base, rows, hours, daily_weight)


def _expected(
    base: Baselines, rows: np.ndarray, hours: np.ndarray, daily_weight: float
) -> np.ndarray:
    shape = hours.shape
    rows, hours = rows.ravel(), hours.ravel()
    weeks = base.ring_weeks
    monday_based = hours * HOUR_US + 3 * DAY_US
    how = (monday_based % WEEK_US) // HOUR_US
    current = (monday_based // WEEK_US) % weeks
    first_hour = base.first_us[rows] // HOUR_US
    earlier = np.clip((hours - first_hour) // 168, 0, weeks - 1)
    other = np.arange(weeks)[None, :] != current[:, None]  # (n, W): earlier weeks' slots
    near = base.ring[rows[:, None], (how[:, None] + _NEAR) % 168]  # (n, 3, W)
    weekly = (near * other[:, None, :]).sum(axis=(1, 2)) / (3 * np.maximum(earlier, 1))
    daily = np.zeros(len(rows))
    if daily_weight:
        same = base.ring[rows[:, None], _SAME_HOUR[how % 24]]  # (n, 21, W)
        daily = (same * other[:, None, :]).sum(axis=(1, 2)) / (21 * np.maximum(earlier, 1))
    out = np.where(earlier > 0, np.maximum(weekly, daily_weight * daily), np.nan)
    result: np.ndarray = out.reshape(shape)
    return result


def trailing_run(hot: np.ndarray) -> np.ndarray:
    """Length of the run of True at the end of each row.

    >>> trailing_run(np.array([[1, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]], bool)).tolist()
    [2, 4, 0]
    """
    width = hot.shape[1]
    last_cold = np.where(~hot, np.arange(width)[None, :], -1).max(axis=1)
    run: np.ndarray = width - 1 - last_cold
    return run
