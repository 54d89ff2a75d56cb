"""The archive as the commands and `serve` use it: the configured folder and key, the
cutoff, and the hot store seen as an `ArchiveSource` (registry below: one entry per store
type; the Elasticsearch store plays the role itself, see its archive.py).

>>> from datetime import date
>>> cutoff(Retention(hot_days=400), None, date(2026, 12, 3)).isoformat()
'2025-10-29T00:00:00+00:00'
>>> cutoff(Retention(), date(2025, 1, 1), date(2026, 12, 3)).isoformat()
'2025-01-01T00:00:00+00:00'
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import cast

from pipeline.archive import archiver, keys
from pipeline.archive.settings import ArchiveSettings, Retention
from pipeline.archive.source import ArchiveSource
from pipeline.errors import ConfigError, StoreError
from pipeline.store.base import Store


def _duckdb(store: Store) -> ArchiveSource:
    from pipeline.store.duckdb.archive import DuckDBArchiveSource
    from pipeline.store.duckdb.store import DuckDBStore

    if not isinstance(store, DuckDBStore):
        raise StoreError("the archive needs the store itself, not a service's API")
    return DuckDBArchiveSource(store)


def _itself(store: Store) -> ArchiveSource:
    """A store that plays the role itself (the Elasticsearch store)."""
    if not all(hasattr(store, m) for m in ("archivable_days", "day_events", "drop_day")):
        raise StoreError("the archive needs the store itself, not a service's API")
    return cast(ArchiveSource, store)


ARCHIVE_SOURCES: dict[str, Callable[[Store], ArchiveSource]] = {
    "duckdb": _duckdb,
    "elasticsearch": _itself,
}


def archive_source(store_type: str, store: Store) -> ArchiveSource:
    make = ARCHIVE_SOURCES.get(store_type)
    if make is None:
        raise StoreError(
            f"archiving is not available for store type {store_type!r} yet; "
            f"available: {', '.join(ARCHIVE_SOURCES)}"
        )
    return make(store)


def settings_of(retention: Retention) -> ArchiveSettings:
    if retention.archive is None:
        raise ConfigError(
            "no archive configured: add `retention: {archive: {path: FOLDER, key_file: KEY}}` "
            "to the config (make the key with `secretwatch archive keygen --out KEY`)"
        )
    return retention.archive


def cutoff(retention: Retention, before: date | None, today: date) -> datetime:
    """UTC midnight of `before`, else of today - hot_days: days before it are archived."""
    day = before if before is not None else today - timedelta(days=retention.hot_days)
    return datetime.combine(day, time.min, UTC)


def run_archive(
    retention: Retention,
    store_type: str,
    store: Store,
    before: date | None = None,
    on_day: archiver.DayDone | None = None,
    now: datetime | None = None,
    stopping: Callable[[], bool] | None = None,
) -> archiver.ArchiveRun:
    """`secretwatch archive` on an open, writable store."""
    settings = settings_of(retention)
    key = keys.load_private(settings)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    source = archive_source(store_type, store)
    return archiver.archive(
        source, store, settings.path, key, cutoff(retention, before, today), on_day, stopping
    )
