"""Data-source coverage: which logs the review rests on, from when to when, and where they
fall silent. A log that stopped arriving must read as a gap, never as "no access"."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypedDict

import pandas as pd

GAP_COLUMNS = ["source", "backend", "gap_start", "gap_end", "hours"]
COVERAGE_COLUMNS = [
    "source", "backend", "first_event", "last_event", "events", "active_days", "gaps",
    "longest_gap_hours", "status",
]  # fmt: skip
_HOUR = timedelta(hours=1)


class _Coverage(TypedDict):
    """One row of `summarize`, in COVERAGE_COLUMNS order."""

    source: str
    backend: str
    first_event: pd.Timestamp
    last_event: pd.Timestamp
    events: int
    active_days: int
    gaps: int
    longest_gap_hours: float
    status: str


def gaps(
    days: pd.DataFrame,
    since: datetime,
    until: datetime,
    limit_hours: float,
    known: Iterable[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Silences longer than `limit_hours` per (source, backend), from daily buckets
    (`source_coverage` rows): between one day's last event and the next active day's
    first, and at either end of the period. A day holds at most 24 hours, so daily first
    and last stamps find every silence of a day or more exactly. Sources in `known` (seen
    before the period) that sent nothing are one gap as long as the period."""
    limit = timedelta(hours=limit_hours)
    start_all, end_all = pd.Timestamp(since), pd.Timestamp(until)
    rows: list[tuple[str, str, pd.Timestamp, pd.Timestamp, float]] = []  # GAP_COLUMNS
    seen: set[tuple[str, str]] = set()
    for (source, backend), group in days.groupby(["source", "backend"], sort=True):
        seen.add((source, backend))
        group = group.sort_values("day")
        starts = [start_all, *group["last_ts"]]
        ends = [*group["first_ts"], end_all]
        for start, end in zip(starts, ends, strict=True):
            if end - start > limit:
                rows.append((source, backend, start, end, round((end - start) / _HOUR, 1)))
    for source, backend in sorted(set(known) - seen):
        rows.append((source, backend, start_all, end_all, round((end_all - start_all) / _HOUR, 1)))
    frame = pd.DataFrame(rows, columns=GAP_COLUMNS)
    return frame.sort_values(["source", "backend", "gap_start"], ignore_index=True)


def summarize(days: pd.DataFrame, gap_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, backend): first and last event, events, active days, gaps,
    and a status: `complete`, `gaps`, or `missing` (nothing in the period at all)."""
    per_gap = gap_rows.groupby(["source", "backend"])["hours"].agg(["count", "max"])
    rows: list[_Coverage] = []
    for (source, backend), group in days.groupby(["source", "backend"], sort=True):
        count, longest = (
            per_gap.loc[(source, backend)] if (source, backend) in per_gap.index else (0, 0.0)
        )
        rows.append({
            "source": source, "backend": backend, "first_event": group["first_ts"].min(),
            "last_event": group["last_ts"].max(), "events": int(group["events"].sum()),
            "active_days": int(group["day"].nunique()), "gaps": int(count),
            "longest_gap_hours": float(longest), "status": "gaps" if count else "complete",
        })  # fmt: skip
    listed = {(r["source"], r["backend"]) for r in rows}
    for (source, backend), (count, longest) in per_gap.iterrows():
        if (source, backend) not in listed:
            rows.append({
                "source": source, "backend": backend, "first_event": pd.NaT,
                "last_event": pd.NaT, "events": 0, "active_days": 0, "gaps": int(count),
                "longest_gap_hours": float(longest), "status": "missing",
            })  # fmt: skip
    frame = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    return frame.sort_values(["source", "backend"], ignore_index=True)
