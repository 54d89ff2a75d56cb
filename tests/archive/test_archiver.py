"""`secretwatch archive` on the DuckDB store: days move whole into Parquet, nothing is lost
or doubled, re-running changes nothing, late events make a new part with a new digest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from archive_helpers import DAY0, SOURCES, day_rows, fill, ids, row, setup
from clitext import flat
from typer.testing import CliRunner

from pipeline.archive import layout
from pipeline.archive.verify import verify
from pipeline.cli import app
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.duckdb.archive import SCHEMA

BEFORE = (DAY0 + timedelta(days=3)).isoformat()  # days 0, 1, 2 go; day 3 stays hot


def run(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr, flat (a check for "in use" once met "in \\nuse")."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, flat(result.stdout), flat(result.stderr)


def test_archive_moves_whole_days_and_rerun_changes_nothing(tmp_path: Path) -> None:
    config, store, archive, _ = setup(tmp_path)
    total = fill(store, days=4, per_day=40)
    code, out, err = run("archive", "--before", BEFORE, "-c", str(config))
    assert code == 0, err
    assert "3 days archived: 360 events" in out and "360 events dropped" in out
    assert f"{DAY0}: 120 events archived, 120 dropped" in err  # progress, a line per day
    hot, cold = ids(store, archive)
    assert sum(hot.values()) == 120 and sum(cold.values()) == 360
    assert not set(hot) & set(cold) and max(cold.values()) == 1
    assert sum(hot.values()) + sum(cold.values()) == total
    files = layout.event_files(archive, None, None)
    assert len(files) == 9 and files[0].name == f"{DAY0}.aws.0.parquet"
    table = pq.read_table(files[0])
    assert table.schema.equals(SCHEMA)
    assert table["ts"].to_pylist() == sorted(table["ts"].to_pylist())
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    digests = sorted((archive / "digests").iterdir())
    assert [d.name for d in digests] == [
        f"{DAY0 + timedelta(days=i)}.{i:06d}.json" for i in range(3)
    ]

    code, out, _ = run("archive", "--before", BEFORE, "-c", str(config))
    assert code == 0 and "0 days archived" in out
    assert sorted((archive / "digests").iterdir()) == digests
    assert ids(store, archive) == (hot, cold)
    assert not verify(archive).problems


def test_cutoff_defaults_to_hot_days_before_today(tmp_path: Path) -> None:
    config, store, archive, _ = setup(tmp_path, hot_days=2)
    today = datetime.now(UTC).date()
    rows = [r for d in (5, 2, 1) for r in day_rows(today - timedelta(days=d), "vault", 3)]
    with DuckDBStore(store) as s:
        s.write_batch(rows)
    code, out, err = run("archive", "-c", str(config), "--quiet")
    assert code == 0, err
    assert err == "" and "1 days archived: 3 events" in out  # today-2 is the first hot day
    hot, cold = ids(store, archive)
    assert len(cold) == 3 and len(hot) == 6


def test_late_events_of_an_archived_day_make_a_new_part_and_digest(tmp_path: Path) -> None:
    config, store, archive, _ = setup(tmp_path)
    fill(store, days=2, per_day=10, sources=("vault",))
    assert run("archive", "--before", BEFORE, "-c", str(config))[0] == 0
    late = row("late-1", datetime.combine(DAY0, datetime.min.time(), UTC) + timedelta(hours=5))
    replayed = day_rows(DAY0, "vault", 10)[:4]  # the same events ingested again
    with DuckDBStore(store) as s:
        assert s.write_batch([late, *replayed]) == 5
    code, out, err = run("archive", "--before", BEFORE, "-c", str(config))
    assert code == 0, err
    assert "1 days archived: 1 events" in out and "5 events dropped" in out
    assert (archive / layout.event_file(Path(), DAY0, "vault", 1)).exists()
    assert (archive / "digests" / f"{DAY0}.000002.json").exists()
    hot, cold = ids(store, archive)
    assert not hot and sum(cold.values()) == 21 and max(cold.values()) == 1
    assert not verify(archive).problems


def test_a_changed_part_stops_the_drop_of_its_day(tmp_path: Path) -> None:
    config, store, archive, _ = setup(tmp_path)
    fill(store, days=1, per_day=5, sources=("vault",))
    assert run("archive", "--before", BEFORE, "-c", str(config))[0] == 0
    part = layout.event_file(archive, DAY0, "vault", 0)
    part.write_bytes(part.read_bytes() + b"x")
    with DuckDBStore(store) as s:
        s.write_batch(day_rows(DAY0, "vault", 5)[:1])
    code, _, err = run("archive", "--before", BEFORE, "-c", str(config))
    assert code == 2 and "does not match its digest" in err
    with DuckDBStore(store, read_only=True) as s:
        assert s.count() == 1  # the hot copy stays: the archived one cannot be trusted


def test_without_an_archive_section_the_command_says_what_to_add(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"store: {{path: {tmp_path / 's.duckdb'}}}\n")
    code, _, err = run("archive", "-c", str(config))
    assert code == 2 and "retention:" in err and "archive keygen" in err


def test_sources_of_a_day_share_one_digest(tmp_path: Path) -> None:
    config, store, archive, _ = setup(tmp_path)
    fill(store, days=1, per_day=3)
    assert run("archive", "--before", BEFORE, "-c", str(config))[0] == 0
    import json

    (digest,) = (archive / "digests").iterdir()
    record = json.loads(digest.read_text())
    assert sorted(f["source"] for f in record["files"]) == sorted(SOURCES)
    assert record["day"] == DAY0.isoformat() and record["previous"] is None
    assert all(f["rows"] == 3 for f in record["files"])
    assert record["files"][0]["first_ts"].startswith(f"{DAY0}T00:00:00")
    assert record["files"][0]["last_ts"] == f"{DAY0}T23:59:59.999999+00:00"
    assert date.fromisoformat(record["day"]) == DAY0


def test_a_store_held_by_another_process_names_serves_schedule(tmp_path: Path) -> None:
    import subprocess
    import sys

    config, store, _, _ = setup(tmp_path)
    fill(store, days=1, per_day=2)
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, holding the store's lock
        [
            sys.executable,
            "-c",
            f"import duckdb,sys; c=duckdb.connect({str(store)!r}); "
            "print('held', flush=True); sys.stdin.read()",
        ],  # fmt: skip
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, _, err = run("archive", "--before", BEFORE, "-c", str(config))
    finally:
        holder.communicate("", timeout=30)
    assert code == 2 and "in use" in err and "archives on its own" in err


def test_readers_find_a_periods_files_and_digests(tmp_path: Path) -> None:
    config, store, archive, _ = setup(tmp_path)
    fill(store, days=4, per_day=2, sources=("vault",))
    assert run("archive", "--before", BEFORE, "-c", str(config))[0] == 0
    since = datetime.combine(DAY0 + timedelta(days=1), datetime.min.time(), UTC)
    until = since + timedelta(hours=30)  # ends inside the third day: it overlaps
    files = layout.event_files(archive, since, until)
    assert [f.name for f in files] == [
        f"{DAY0 + timedelta(days=d)}.vault.0.parquet" for d in (1, 2)
    ]
    digests = layout.digest_files(archive, since, until)
    assert [d.name for d in digests] == [
        f"{DAY0 + timedelta(days=d)}.00000{d}.json" for d in (1, 2)
    ]
    assert len(layout.event_files(archive, None, since)) == 1
