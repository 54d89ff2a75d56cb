"""Reads over hot store and archive (pipeline/store/duckdb/archived.py): `events`, `count`
and `stats` give after `secretwatch archive` what they gave before it, read only the
archived days a query can reach, count an event once in the archiver's crash window,
and read files written before the `actor` column."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.archive import keys, layout
from pipeline.archive.archiver import CRASH_ENV
from pipeline.archive.run import run_archive
from pipeline.cli import app
from pipeline.config import Config, load_config
from pipeline.errors import StoreError
from pipeline.record import PROVISIONAL_NOTE, EventRow
from pipeline.store import open_store
from pipeline.store.base import ALL_EVENTS, EventFilter
from pipeline.store.duckdb import DuckDBStore, archived

DAY0 = date(2024, 3, 1)
DAYS = 6
ARCHIVED = 4  # days DAY0 .. DAY0+3 are archived, the last two stay hot
BEFORE = DAY0 + timedelta(days=ARCHIVED)
SOURCES = ("vault", "aws", "k8s")
SCRIPT = Path(sys.executable).with_name("secretwatch")


def _at(day: int, hours: float = 0) -> datetime:
    return datetime.combine(DAY0, datetime.min.time(), UTC) + timedelta(days=day, hours=hours)


def row(event_id: str, ts: datetime, source: str = "vault", **fields: object) -> EventRow:
    values: dict[str, object] = {
        "event_id": event_id,
        "ts_us": int(ts.timestamp()) * 1_000_000 + ts.microsecond,
        "source": source,
        "backend": source,
        "identity": "orders-api",
        "identity_kind": "service",
        "secret": "secret/apps/orders/db",
        "action": "read",
        "operation": "read",
        "outcome": "success",
        "source_ip": "10.0.0.1",
        "user_agent": None,
        "request_id": event_id,
        "error": None,
        "note": None,
        "actor": None,
    }
    values.update(fields)
    return EventRow(**values)  # type: ignore[arg-type]


def world() -> list[EventRow]:
    """DAYS days of 3 sources, 20 events each, with varied identities, outcomes, actors,
    a provisional event, and events on the first and last microsecond of each day."""
    out = []
    for d in range(DAYS):
        for s in SOURCES:
            for i in range(20):
                ts = _at(d) + timedelta(days=1) * i / 20
                if i == 19:
                    ts = _at(d + 1) - timedelta(microseconds=1)
                out.append(
                    row(
                        f"{s}-{d}-{i}",
                        ts,
                        s,
                        identity=f"svc-{i % 4}",
                        outcome="denied" if i % 7 == 0 else "success",
                        actor="alice@example.com" if i % 5 == 0 else None,
                        note=PROVISIONAL_NOTE if (d, i) == (1, 3) else None,
                        secret=None if i % 9 == 0 else f"secret/team-{i % 3}/db",
                    )
                )
    return out


def make(tmp: Path) -> tuple[Path, Config]:
    """A store holding world() and a config naming it and an archive with a fresh key."""
    key = tmp / "archive.key"
    keys.keygen(key)
    config = tmp / "config.yaml"
    retention = {"hot_days": 30, "archive": {"path": str(tmp / "archive"), "key_file": str(key)}}
    config.write_text(
        yaml.safe_dump({"store": {"path": str(tmp / "store.duckdb")}, "retention": retention})
    )
    with DuckDBStore(tmp / "store.duckdb") as store:
        store.write_batch(world())
    return config, load_config(config)


FILTERS = {
    "all": ALL_EVENTS,
    "archived day": EventFilter(since=_at(1), until=_at(2)),
    "partial days across the boundary": EventFilter(since=_at(2, 5.5), until=_at(5, 3)),
    "hot only": EventFilter(since=_at(4)),
    "open start": EventFilter(until=_at(2, 12)),
    "identity wildcard": EventFilter(identity="svc-*", outcome="denied"),
    "berlin day": EventFilter(
        since=datetime(2024, 3, 2, 0, tzinfo=timezone(timedelta(hours=2))),
        until=datetime(2024, 3, 3, 0, tzinfo=timezone(timedelta(hours=2))),
    ),
    "new york day": EventFilter(
        since=datetime(2024, 3, 2, 0, tzinfo=timezone(timedelta(hours=-5))),
        until=datetime(2024, 3, 3, 0, tzinfo=timezone(timedelta(hours=-5))),
    ),
}


def snapshot(store: DuckDBStore) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, where in FILTERS.items():
        out[f"events {name}"] = store.events(where, limit=None)
        out[f"newest {name}"] = store.events(where, limit=7, newest_first=True)
        out[f"count {name}"] = store.count(where)
        for by in ("identity", "source", "outcome"):
            out[f"stats {by} {name}"] = store.stats(by, where)
    return out


def assert_same(before: dict[str, object], after: dict[str, object]) -> None:
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, pd.DataFrame):
            got = after[name]
            assert isinstance(got, pd.DataFrame)
            assert list(got.dtypes) == list(value.dtypes), name
            pd.testing.assert_frame_equal(got, value, check_exact=True, obj=name)
        else:
            assert after[name] == value, name


def hot_count(store: DuckDBStore) -> int:
    found = store.con.execute("SELECT count(*) FROM events").fetchone()
    return int(found[0]) if found else 0


def test_reads_after_archiving_equal_reads_before(tmp_path: Path) -> None:
    _, cfg = make(tmp_path)
    store = open_store(cfg, None, False)
    assert isinstance(store, DuckDBStore)
    try:
        before = snapshot(store)
        run_archive(cfg.retention, "duckdb", store, before=BEFORE)
        assert hot_count(store) == 2 * 3 * 20  # the archive really took the first 4 days
        assert_same(before, snapshot(store))
        assert store.count() == DAYS * 3 * 20
    finally:
        store.close()
    # A store opened without the archive sees the hot days only: the reads above used it.
    with DuckDBStore(tmp_path / "store.duckdb", read_only=True) as bare:
        assert bare.count() == 2 * 3 * 20


def test_a_query_reads_only_the_archived_days_it_can_reach(tmp_path: Path) -> None:
    _, cfg = make(tmp_path)
    archive = tmp_path / "archive"
    with open_store(cfg, None, False) as store:
        assert isinstance(store, DuckDBStore)
        run_archive(cfg.retention, "duckdb", store, before=BEFORE)
        day1 = EventFilter(since=_at(1), until=_at(2))
        expected = store.events(day1, limit=None)
        # Day 0's files turned to junk: a query of day 1 never opens them...
        for path in (archive / "events").rglob(f"{DAY0.isoformat()}.*.parquet"):
            path.write_bytes(b"not parquet")
        pd.testing.assert_frame_equal(store.events(day1, limit=None), expected)
        assert store.count(EventFilter(since=_at(1))) == (DAYS - 1) * 3 * 20
        # ...while one that reaches day 0 does, and says what to run.
        with pytest.raises(StoreError, match="archive verify"):
            store.count()


def test_files_chosen_by_name_for_utc_days(tmp_path: Path) -> None:
    _, cfg = make(tmp_path)
    archive = tmp_path / "archive"
    with open_store(cfg, None, False) as store:
        run_archive(cfg.retention, "duckdb", store, before=BEFORE)

    def days(since: datetime | None, until: datetime | None) -> list[str]:
        return sorted({d.isoformat() for d, _ in archived.event_files(archive, since, until)})

    assert days(_at(1), _at(2)) == ["2024-03-02"]
    assert days(_at(1, 23), _at(2, 1)) == ["2024-03-02", "2024-03-03"]
    assert days(None, _at(1)) == ["2024-03-01"]
    assert days(_at(3), None) == ["2024-03-04"]
    assert days(_at(2), _at(2)) == []
    # A day in UTC+2 starts the evening before in UTC; one in UTC-5 ends the next morning.
    plus2, minus5 = timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))
    assert days(datetime(2024, 3, 2, tzinfo=plus2), datetime(2024, 3, 3, tzinfo=plus2)) == [
        "2024-03-01",
        "2024-03-02",
    ]
    assert days(datetime(2024, 3, 2, tzinfo=minus5), datetime(2024, 3, 3, tzinfo=minus5)) == [
        "2024-03-02",
        "2024-03-03",
    ]
    assert len(archived.event_files(archive, _at(1), _at(2))) == 3  # one per source


def _archive_crashing(config: Path, step: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    done = subprocess.run(  # noqa: S603 - our own console script
        [str(SCRIPT), "archive", "--before", BEFORE.isoformat(), "-c", str(config)],
        env={**env, CRASH_ENV: step},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.mark.parametrize("step", ["parquet", "digest"])
def test_crash_window_counts_each_event_once(tmp_path: Path, step: str) -> None:
    """kill -9 of a real `secretwatch archive` after the Parquet files (unlisted yet) and
    after the first digest (listed): events are then in both places. (Inside the drop
    transaction is the digest case again: the rollback leaves the hot rows.)"""
    config, cfg = make(tmp_path)
    with open_store(cfg, None, True) as store:
        assert isinstance(store, DuckDBStore)
        before = snapshot(store)
    _archive_crashing(config, step)
    assert list((tmp_path / "archive" / "events").rglob("*.parquet"))  # written...
    with open_store(cfg, None, True) as store:
        assert isinstance(store, DuckDBStore)
        assert hot_count(store) == DAYS * 3 * 20  # ...and not dropped
        assert_same(before, snapshot(store))


def test_late_arrivals_and_leftovers_on_archived_days(tmp_path: Path) -> None:
    _, cfg = make(tmp_path)
    with open_store(cfg, None, False) as store:
        assert isinstance(store, DuckDBStore)
        before = snapshot(store)
        archived_rows = [r for r in world() if r.ts_us < _at(ARCHIVED).timestamp() * 1e6]
        run_archive(cfg.retention, "duckdb", store, before=BEFORE)
        archive = tmp_path / "archive"
        assert "row_number" not in archived.relation(store.con, archive, None, None)
        # The archived rows back in the hot store (as a crash before the drop leaves
        # them): nothing counts twice; only the days in both places are deduplicated.
        store.write_batch(archived_rows[:100])
        assert_same(before, snapshot(store))
        assert "row_number" in archived.relation(store.con, archive, None, None)
        assert "row_number" not in archived.relation(store.con, archive, _at(3), None)
        # A late event on an archived day is new: it counts.
        store.write_batch([row("late-1", _at(1, 6), "vault", identity="svc-late")])
        day1 = EventFilter(since=_at(1), until=_at(2))
        assert store.count(day1) == 3 * 20 + 1
        assert "late-1" in set(store.events(day1, limit=None)["event_id"])
        # A provisional copy arriving hot for an archived complete record: the complete
        # record is what is read.
        complete = next(r for r in archived_rows if r.event_id == "vault-0-1")
        store.write_batch([complete._replace(note=PROVISIONAL_NOTE, outcome="denied")])
        got = store.events(EventFilter(identity=complete.identity), limit=None)
        mine = got[got["event_id"] == complete.event_id]
        assert len(mine) == 1 and mine["note"].isna().all()
        assert mine["outcome"].iloc[0] == complete.outcome


def test_files_written_before_the_actor_column(tmp_path: Path) -> None:
    """An archived file without `actor` (archived before migration 5) reads as NULL actor,
    every column typed as the hot table's."""
    _, cfg = make(tmp_path)
    archive = tmp_path / "archive"
    with open_store(cfg, None, False) as store:
        assert isinstance(store, DuckDBStore)
        hot = store.events(EventFilter(since=_at(4)), limit=None)
        run_archive(cfg.retention, "duckdb", store, before=BEFORE)
        old = layout.event_file(archive, DAY0, "vault", 0)
        pq.write_table(pq.read_table(old).drop_columns(["actor"]), old)
        day0 = store.events(EventFilter(source="vault", until=_at(1)), limit=None)
        assert len(day0) == 20 and day0["actor"].isna().all()
        assert list(day0.columns) == list(hot.columns)
        relation = archived.relation(store.con, archive, None, _at(1))
        assert "read_parquet" in relation
        types = store.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # noqa: S608
        table = store.con.execute("DESCRIBE events").fetchall()
        assert [(c[0], c[1]) for c in types] == [(c[0], c[1]) for c in table]
        # Every file of a query lacking it: the column is still there, NULL.
        only = store.events(EventFilter(source="vault", until=_at(0, 12)), limit=None)
        assert list(only.columns) == list(hot.columns) and only["actor"].isna().all()


def test_cli_events_and_stats_show_archived_events(tmp_path: Path) -> None:
    config, cfg = make(tmp_path)
    runner = CliRunner()
    since, until = "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z"
    ask_events = ["events", "--since", since, "--until", until, "--limit", "0", "--json"]
    ask_stats = ["stats", "--by", "identity", "--since", since, "--until", until]

    def run(args: list[str]) -> str:
        result = runner.invoke(app, [*args, "-c", str(config)])
        assert result.exit_code == 0, result.output
        return result.stdout

    events_before, stats_before = run(ask_events), run(ask_stats)
    with open_store(cfg, None, False) as store:
        run_archive(cfg.retention, "duckdb", store, before=BEFORE)
        assert isinstance(store, DuckDBStore) and hot_count(store) == 2 * 3 * 20
    events_after, stats_after = run(ask_events), run(ask_stats)
    shown = [json.loads(line)["event_id"] for line in events_after.splitlines() if line.strip()]
    assert len(shown) == 60 and "vault-1-0" in shown
    assert events_after == events_before
    assert stats_after == stats_before and "svc-0" in stats_after
