"""Plausible event times: one record dated in the year 9999 must not blind detection.

Detection's clock and watermark follow event time, so an event far in the future would move
them past every real event still to come (those would be stored but never judged), and one
far in the past would make a detector walk decades of empty batches. Such events are
quarantined before anything stores or judges them: each becomes a dead letter naming the
file, line and offset, why, and the event as parsed (names only, never values).

Two checks, both configurable under `ingest.time_window`:
- against the ingest clock: no later than `max_future` ahead (source clocks drift a little,
  not by hours), no earlier than `max_past` behind (the archive keeps years, not centuries);
- against the file's other records: in a batch of at least `min_peers` events of one file
  (a read chunk: minutes to days of a log), a few events cut off from the rest by a gap
  longer than `max_skew` are strays (`_stray`). A real outage gap splits a batch into
  large groups and is left alone; only isolated records are judged.
"""

from __future__ import annotations

from datetime import timedelta
from operator import itemgetter
from typing import TYPE_CHECKING

import orjson
from pydantic import BaseModel, ConfigDict, Field

from pipeline.record import EventRow, from_micros
from pipeline.sinks.settings import Duration

if TYPE_CHECKING:
    import numpy as np

    from pipeline.sources.base import FeedResult

_US = 1_000_000
_TS = itemgetter(EventRow._fields.index("ts_us"))


class TimeWindow(BaseModel):
    """`ingest.time_window`: how far event times may stray before they are quarantined."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future: Duration = Field(
        timedelta(minutes=15), gt=timedelta(0), description="ahead of the ingest clock"
    )
    max_past: Duration = Field(
        timedelta(days=20 * 366), gt=timedelta(0), description="behind the ingest clock"
    )
    max_skew: Duration = Field(
        timedelta(days=30), gt=timedelta(0), description="from the file's other records"
    )
    min_peers: int = Field(8, ge=2, description="events a batch needs for the skew check")


def quarantine(
    result: FeedResult, file: str, fmt: str | None, window: TimeWindow, now_us: int
) -> None:
    """Move the events of `result` (one file's) with an implausible time to dead letters."""
    import numpy as np  # here: the config reads `TimeWindow`, and a CLI start skips numpy

    from pipeline.sources.base import DeadLetter  # here too: it loads every parser

    rows = result.rows
    if not rows:
        return
    ts = np.fromiter(map(_TS, rows), np.int64, len(rows))
    late_bound = now_us + _micros(window.max_future)
    early_bound = now_us - _micros(window.max_past)
    low, high = int(ts.min()), int(ts.max())
    if early_bound <= low and high <= late_bound and high - low <= _micros(window.max_skew):
        return  # the usual batch: all in bounds, no gap wider than the skew can split it
    bad = (ts > late_bound) | (ts < early_bound)
    if len(ts) >= window.min_peers:
        bad |= _stray(ts, _micros(window.max_skew), window.min_peers)
    if not bad.any():
        return
    where = result.where if len(result.where) == len(rows) else [(0, -1)] * len(rows)
    median_us = int(np.median(ts[~bad])) if (~bad).any() else None
    keep_rows, keep_where = [], []
    for row, at, is_bad in zip(rows, where, bad.tolist(), strict=True):
        if not is_bad:
            keep_rows.append(row)
            keep_where.append(at)
            continue
        reason = _reason(row.ts_us, now_us, late_bound, early_bound, median_us, window)
        result.dead.append(DeadLetter(file, at[0], at[1], reason, _raw(row), fmt))
        result.quarantined += 1
    result.rows, result.where = keep_rows, keep_where


def _stray(ts: np.ndarray, skew_us: int, min_peers: int) -> np.ndarray:
    """Events in small groups that sit more than `skew_us` apart from the batch's main body.

    The batch splits into groups at every gap longer than `skew_us`; the largest group is
    the file's own time. A group under both `min_peers` events and a tenth of the batch,
    cut off from it, is a stray: a record dated months off among a day of real ones.

    >>> import numpy as np
    >>> day = 86_400_000_000
    >>> _stray(np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 400 * day]), 30 * day, 8).tolist()
    [False, False, False, False, False, False, False, False, False, False, True]
    """
    import numpy as np  # here: see `quarantine`

    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    group = np.concatenate(([0], np.cumsum(np.diff(sorted_ts) > skew_us)))
    sizes = np.bincount(group)
    small = (sizes < min_peers) & (sizes * 10 < len(ts))
    small[int(np.argmax(sizes))] = False
    out = np.zeros(len(ts), bool)
    out[order] = small[group]
    return out


def _reason(
    ts_us: int, now_us: int, late: int, early: int, median_us: int | None, window: TimeWindow
) -> str:
    """Why, then (after " - ", which summaries group by) the numbers."""
    when = _iso(ts_us)
    if ts_us > late:
        return (
            "implausible time: later than the ingest clock by more than "
            f"ingest.time_window.max_future ({window.max_future}) - event at {when}, clock "
            f"{_iso(now_us)}; quarantined so it cannot move detection's clock"
        )
    if ts_us < early:
        return (
            "implausible time: earlier than the ingest clock by more than "
            f"ingest.time_window.max_past ({window.max_past.days} days) - event at {when}, "
            f"clock {_iso(now_us)}; quarantined"
        )
    return (
        "implausible time: further than ingest.time_window.max_skew "
        f"({window.max_skew.days} days) from the other records of its file - event at "
        f"{when}, the others around {_iso(median_us or ts_us)}; quarantined so it cannot move "
        "detection's clock"
    )


def _raw(row: EventRow) -> bytes:
    """The event as parsed (normalized names, never values), for the dead letter."""
    doc = row._asdict()
    doc["timestamp"] = _iso(doc.pop("ts_us"))
    return orjson.dumps(doc)


def _iso(ts_us: int) -> str:
    try:
        return from_micros(ts_us).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{ts_us} µs since 1970"


def _micros(delta: timedelta) -> int:
    return int(delta.total_seconds() * _US)
