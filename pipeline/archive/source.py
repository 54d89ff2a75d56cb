"""`ArchiveSource`: the one role the archiver needs from a hot store (DuckDB:
pipeline/store/duckdb/archive.py; Elasticsearch: pipeline/store/elasticsearch/archive.py).

A day is a UTC calendar day; a source is an `AccessEvent.source` value. The archiver
writes a day's events to Parquet, fsyncs them and their digest, and only then calls
`drop_day` with the count it archived, so a crash at any step leaves every event in
exactly one place (or, between the digest and the drop, in both, which the next run
recognizes by event id and settles by dropping the hot copy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import pyarrow as pa


class ArchiveSource(Protocol):
    """What the archiver needs from a hot store: whole UTC days of events, per source."""

    def archivable_days(self, before: datetime) -> list[tuple[date, str, int]]:
        """(UTC day, source, event count) of every day wholly before `before` that still
        has hot events."""

    def day_events(self, day: date, source: str) -> pa.Table:
        """That day's events of that source, columns pipeline.store.rows.EVENT_COLUMNS (ts
        as timestamp[us, UTC]), sorted by (ts, event_id)."""

    def drop_day(self, day: date, source: str, expected: int) -> int:
        """Delete that day's events of that source in one transaction if exactly `expected`
        are there (else delete nothing and raise StoreError); return how many were
        deleted."""


@runtime_checkable
class BatchDrop(Protocol):
    """Optional, for a store where a transaction costs more than the rows it deletes
    (DuckDB): drop several archived (day, source) units at once."""

    def drop_days(
        self,
        units: Sequence[tuple[date, str, int]],
        before_commit: Callable[[], None] | None = None,
    ) -> int:
        """Delete each (day, source)'s events in one transaction if each has exactly its
        expected count (else delete nothing and raise StoreError); return how many were
        deleted. `before_commit` runs inside the transaction after the deletes (the
        archiver's crash test hook)."""
