"""The DuckDB store as an ArchiveSource: days read ahead match a query per day, and a drop
whose count is off deletes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from archive_helpers import DAY0, SOURCES, day_rows, fill, row

from pipeline.archive.source import ArchiveSource, BatchDrop
from pipeline.errors import StoreError
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.duckdb.archive import SCHEMA, DuckDBArchiveSource, midnight

BEFORE = midnight(DAY0 + timedelta(days=3))


def test_read_ahead_serves_each_day_and_source_as_a_query_would(tmp_path: Path) -> None:
    fill(tmp_path / "s.duckdb", days=4, per_day=7)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        source: ArchiveSource = DuckDBArchiveSource(store, read_ahead_rows=30)
        days = source.archivable_days(BEFORE)
        assert [(d, s) for d, s, _ in days] == [
            (DAY0 + timedelta(days=i), s) for i in range(3) for s in sorted(SOURCES)
        ]
        for day, name, n in days:
            table = source.day_events(day, name)
            assert table.schema.equals(SCHEMA) and table.num_rows == n
            direct = store.con.execute(
                "SELECT event_id FROM events WHERE CAST(ts AS DATE) = ? AND source = ? "
                "ORDER BY ts, event_id",
                [day, name],
            ).fetchall()
            assert table["event_id"].to_pylist() == [r[0] for r in direct]
        assert source.day_events(DAY0 + timedelta(days=9), "vault").num_rows == 0


def test_a_drop_with_the_wrong_count_deletes_nothing(tmp_path: Path) -> None:
    fill(tmp_path / "s.duckdb", days=2, per_day=5)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        source = DuckDBArchiveSource(store)
        assert isinstance(source, BatchDrop)
        with pytest.raises(StoreError, match="4 archived"):
            source.drop_day(DAY0, "vault", 4)
        units = [(DAY0, "vault", 5), (DAY0, "aws", 6)]
        with pytest.raises(StoreError, match="6 archived"):
            source.drop_days(units)
        assert store.count() == 30
        assert source.drop_days([(DAY0, "vault", 5), (DAY0, "aws", 5)]) == 10
        assert store.count() == 20  # k8s of the day, and the whole second day, stay


def test_an_event_arriving_after_the_read_keeps_the_day_hot(tmp_path: Path) -> None:
    fill(tmp_path / "s.duckdb", days=1, per_day=5, sources=("vault",))
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        source = DuckDBArchiveSource(store)
        source.archivable_days(BEFORE)
        read = source.day_events(DAY0, "vault")
        late = datetime.combine(DAY0, datetime.min.time(), UTC) + timedelta(hours=3)
        store.write_batch([row("late", late)])
        with pytest.raises(StoreError, match="6 events of .* there, 5 archived"):
            source.drop_days([(DAY0, "vault", read.num_rows)])
        assert store.count() == 6


def test_the_first_and_last_microsecond_belong_to_their_day(tmp_path: Path) -> None:
    rows = day_rows(DAY0, "vault", 3) + day_rows(DAY0 + timedelta(days=1), "vault", 3)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write_batch(rows)
        source = DuckDBArchiveSource(store)
        assert [n for _, _, n in source.archivable_days(BEFORE)] == [3, 3]
        table = source.day_events(DAY0, "vault")
        stamps = table["ts"].to_pylist()
        assert stamps[0] == midnight(DAY0)
        assert stamps[-1] == midnight(DAY0) + timedelta(days=1, microseconds=-1)
