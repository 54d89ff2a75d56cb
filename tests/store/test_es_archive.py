"""The Elasticsearch store as an ArchiveSource (pipeline/store/elasticsearch/archive.py),
against the real test server: whole UTC days per source, read in (ts, event_id) order into
the very Arrow table the DuckDB store gives for the same events, and dropped only when the
count is the one archived."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import ES_URL, drop_indices, es_prefix
from elasticsearch import Elasticsearch
from test_store_contract import make_row
from typer.testing import CliRunner

from pipeline.archive import layout
from pipeline.archive.keys import keygen, load_private
from pipeline.archive.verify import verify
from pipeline.cli import app
from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.duckdb.archive import DuckDBArchiveSource
from pipeline.store.elasticsearch import ElasticsearchStore
from pipeline.store.elasticsearch.archive import day_events
from pipeline.store.elasticsearch.schema import PAGE
from pipeline.store.rows import EVENT_COLUMNS, rows_to_arrow


def rows() -> list[EventRow]:
    """Two sources over three days and a month's edge: µs times, ties on time broken by
    id, a midnight that starts its day, values missing and non-ASCII."""
    return [
        make_row("v-b", "2025-03-30T10:00:00.000001Z"),
        make_row("v-a", "2025-03-30T10:00:00.000001Z", identity="ännä", user_agent="curl/8"),
        make_row("v-c", "2025-03-30T00:00:00Z", secret=None, source_ip=None),
        make_row("v-d", "2025-03-30T23:59:59.999999Z", outcome="denied", error="permission"),
        make_row("v-e", "2025-03-31T23:59:59.999999Z"),
        make_row("v-f", "2025-04-01T00:00:00Z"),
        make_row("a-a", "2025-03-30T12:00:00Z", source="aws", backend="123456789012"),
        make_row("a-b", "2025-03-31T08:30:00.5Z", source="aws", backend="123456789012"),
    ]


@pytest.fixture
def es(tmp_path: Path, es_admin: Elasticsearch) -> Iterator[ElasticsearchStore]:
    prefix = es_prefix(tmp_path)
    drop_indices(es_admin, prefix)
    store = ElasticsearchStore(ES_URL, prefix, backoff=0.05)
    store.open()
    try:
        yield store
    finally:
        store.close()
        drop_indices(es_admin, prefix)


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(tmp_path / "store.duckdb")
    store.open()
    try:
        yield store
    finally:
        store.close()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_archivable_days_are_whole_days_before_the_cut(es: ElasticsearchStore) -> None:
    es.write_batch(rows())
    assert es.archivable_days(_at("2025-04-01T12:00:00")) == [
        (date(2025, 3, 30), "aws", 1),
        (date(2025, 3, 30), "vault", 4),
        (date(2025, 3, 31), "aws", 1),
        (date(2025, 3, 31), "vault", 1),
    ]
    # A cut at midnight ends the day before it; the day of 2025-04-01 is not whole yet.
    assert es.archivable_days(_at("2025-03-31T00:00:00")) == [
        (date(2025, 3, 30), "aws", 1),
        (date(2025, 3, 30), "vault", 4),
    ]
    assert es.archivable_days(_at("2025-04-02T00:00:00"))[-1] == (date(2025, 4, 1), "vault", 1)
    assert es.archivable_days(_at("2025-01-01T00:00:00")) == []


def test_days_equal_duckdbs_for_the_same_events(es: ElasticsearchStore, duck: DuckDBStore) -> None:
    es.write_batch(rows())
    duck.write_batch(rows())
    source = DuckDBArchiveSource(duck)
    cut = _at("2025-04-02T00:00:00")
    assert es.archivable_days(cut) == source.archivable_days(cut)
    for day, name, count in es.archivable_days(cut):
        table = es.day_events(day, name)
        assert table.num_rows == count
        assert table.schema == source.day_events(day, name).schema
        assert table.equals(source.day_events(day, name)), (day, name)
    vault = es.day_events(date(2025, 3, 30), "vault")
    assert vault.column("event_id").to_pylist() == ["v-c", "v-a", "v-b", "v-d"]
    expected = rows_to_arrow([r for r in rows() if r.event_id in {"v-c", "v-a", "v-b", "v-d"}])
    assert vault.equals(expected.sort_by([("ts", "ascending"), ("event_id", "ascending")]))
    assert vault.column_names == EVENT_COLUMNS
    assert vault.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert es.day_events(date(2025, 3, 29), "vault").num_rows == 0
    assert es.day_events(date(2024, 1, 1), "vault").num_rows == 0  # no such month index


def test_a_day_larger_than_a_page_is_read_whole_in_order(es: ElasticsearchStore) -> None:
    n = PAGE + 500
    day = [
        make_row(f"id-{i:06d}", f"2025-03-30T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:00Z")
        for i in range(n)
    ]
    es.write_batch(day)
    es.cluster.read_slices = 1  # one slice: its pages follow each other by search_after
    table = day_events(es.cluster, date(2025, 3, 30), "vault")
    assert table.num_rows == n
    assert table.equals(
        rows_to_arrow(day).sort_by([("ts", "ascending"), ("event_id", "ascending")])
    )


def test_drop_day_deletes_exactly_the_archived_count(es: ElasticsearchStore) -> None:
    es.write_batch(rows())
    with pytest.raises(StoreError, match=r"holds 4 vault events of 2025-03-30, not the 3"):
        es.drop_day(date(2025, 3, 30), "vault", 3)
    assert es.day_events(date(2025, 3, 30), "vault").num_rows == 4  # nothing deleted
    assert es.drop_day(date(2025, 3, 30), "vault", 4) == 4
    assert es.day_events(date(2025, 3, 30), "vault").num_rows == 0
    assert es.drop_day(date(2025, 3, 30), "vault", 0) == 0  # a re-run: nothing left
    assert es.archivable_days(_at("2025-04-02T00:00:00")) == [
        (date(2025, 3, 30), "aws", 1),
        (date(2025, 3, 31), "aws", 1),
        (date(2025, 3, 31), "vault", 1),
        (date(2025, 4, 1), "vault", 1),
    ]
    assert es.count() == len(rows()) - 4


def test_an_event_arriving_after_the_read_is_never_dropped(es: ElasticsearchStore) -> None:
    es.write_batch(rows())
    day = date(2025, 3, 30)
    assert es.day_events(day, "vault").num_rows == 4  # what the archiver wrote
    es.write_batch([make_row("late", "2025-03-30T12:00:00Z")])
    with pytest.raises(StoreError, match="holds 5 vault events of 2025-03-30, not the 4"):
        es.drop_day(day, "vault", 4)
    assert es.day_events(day, "vault").num_rows == 5  # nothing deleted
    # Same count, other events: one read is gone, one unread arrived. Only read ids are
    # deleted, so the unread one stays hot for the next run, and the error says so.
    es.cluster.client.delete(index=f"{es.prefix}-events-2025.03", id="v-a", refresh=True)
    es.write_batch([make_row("later", "2025-03-30T13:00:00Z")])
    with pytest.raises(StoreError, match=r"deleted 4, 0 failed and 1 are there now"):
        es.drop_day(day, "vault", 5)
    assert es.day_events(day, "vault").column("event_id").to_pylist() == ["later"]


def test_drop_day_on_a_read_only_store_is_refused(es: ElasticsearchStore) -> None:
    es.write_batch(rows())
    reader = ElasticsearchStore(ES_URL, es.prefix, read_only=True)
    with reader:
        assert reader.day_events(date(2025, 3, 31), "aws").num_rows == 1
        with pytest.raises(StoreError, match="read-only"):
            reader.drop_day(date(2025, 3, 31), "aws", 1)
    assert es.count() == len(rows())


# -- the archiver over both stores ---------------------------------------------------------
def _archive(source: object, alerts: object, folder: Path, key: Path, before: datetime) -> None:
    from pipeline.archive import archiver
    from pipeline.archive.settings import ArchiveSettings

    private = load_private(ArchiveSettings(path=folder, key_file=key))
    archiver.archive(source, alerts, folder, private, before)  # type: ignore[arg-type]


def test_both_stores_archive_the_same_events_to_identical_parquet(
    tmp_path: Path, es: ElasticsearchStore, duck: DuckDBStore
) -> None:
    events = rows() + [
        make_row(f"bulk-{i:04d}", f"2025-03-31T{i % 24:02d}:{i % 60:02d}:{i % 7:02d}.{i:06d}Z")
        for i in range(300)
    ]
    es.write_batch(events)
    duck.write_batch(events)
    key = tmp_path / "archive.key"
    keygen(key)
    cut = _at("2025-04-01T00:00:00")
    _archive(es, es, tmp_path / "from-es", key, cut)
    _archive(DuckDBArchiveSource(duck), duck, tmp_path / "from-duckdb", key, cut)
    from_es = layout.event_files(tmp_path / "from-es", None, None)
    from_duckdb = layout.event_files(tmp_path / "from-duckdb", None, None)
    names = [p.relative_to(tmp_path / "from-es") for p in from_es]
    assert names == [p.relative_to(tmp_path / "from-duckdb") for p in from_duckdb]
    assert len(names) == 4  # two days, two sources
    for a, b in zip(from_es, from_duckdb, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b)), a.name
        assert a.read_bytes() == b.read_bytes(), a.name  # the same evidence, byte for byte
    archived = sum(pq.read_table(p).num_rows for p in from_es)
    assert archived == len(events) - 1  # all but 2025-04-01's event
    assert es.count() == 1 and duck.count() == 1
    assert not verify(tmp_path / "from-es").problems


def test_secretwatch_archive_on_an_elasticsearch_store(
    tmp_path: Path, es: ElasticsearchStore
) -> None:
    es.write_batch(rows())
    key, folder = tmp_path / "archive.key", tmp_path / "archive"
    keygen(key)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"type": "elasticsearch", "url": ES_URL, "index_prefix": es.prefix},
                "retention": {"archive": {"path": str(folder), "key_file": str(key)}},
            }
        )
    )
    result = CliRunner().invoke(app, ["archive", "--before", "2025-04-01", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert es.count() == 1
    assert sum(pq.read_table(p).num_rows for p in layout.event_files(folder, None, None)) == 7
    again = CliRunner().invoke(app, ["archive", "--before", "2025-04-01", "-c", str(config)])
    assert again.exit_code == 0 and "0 days archived" in again.output
    verified = CliRunner().invoke(app, ["archive", "verify", "-c", str(config)])
    assert verified.exit_code == 0, verified.output
