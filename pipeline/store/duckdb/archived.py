"""Reads over the hot store and the archive (pipeline/archive/) as one `events` relation.

With an archive configured, every event read (`events`, `count`, `stats`, the report
aggregates) runs over the hot `events` table UNION ALL the archived Parquet files, read
in place by DuckDB. Only the files whose UTC day can fall in the query's [since, until)
are read: they are chosen by their names (pipeline/archive/layout.py), listing only the
month folders that overlap, so a query of last week never opens seven years of Parquet.

An event is in exactly one place, except in the archiver's crash window (Parquet written,
hot rows not dropped yet): so the days that have both hot rows and archive files, found
by one query over the archived days' range (archived days are old, the hot store holds
almost nothing there), are deduplicated by event id; every other day is a plain UNION
ALL. A complete record wins over a provisional one, then the hot copy over the archived.

Files written before migration 5 lack the `actor` column: `union_by_name` reads them
with it NULL, and every column is cast to the hot table's type, so a result does not
depend on where its events were.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb

from pipeline.archive import layout
from pipeline.errors import StoreError
from pipeline.errortext import clean_error
from pipeline.record import PROVISIONAL_NOTE
from pipeline.store.rows import EVENT_COLUMNS

HOT = "events"
_DAY = timedelta(days=1)
_TYPED = ", ".join(
    f"CAST({c} AS {'TIMESTAMPTZ' if c == 'ts' else 'VARCHAR'}) AS {c}" for c in EVENT_COLUMNS
)
_COLUMNS = ", ".join(EVENT_COLUMNS)


def _utc(moment: datetime) -> datetime:
    """A bound as UTC (a naive one is UTC already: the store's session time zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


def event_files(
    archive: Path, since: datetime | None, until: datetime | None
) -> list[tuple[date, Path]]:
    """(UTC day, file) of every archived event file whose day overlaps [since, until), in
    (day, source, part) order; only the year and month folders that overlap are listed.
    Links are skipped (`archive verify` refuses them)."""
    first = _utc(since).date() if since is not None else None
    last = (_utc(until) - timedelta(microseconds=1)).date() if until is not None else None
    if first is not None and last is not None and last < first:
        return []
    found: list[tuple[tuple[date, str, int], Path]] = []
    for year in _numbered(archive / layout.EVENTS):
        if (first and year.number < first.year) or (last and year.number > last.year):
            continue
        for month in _numbered(year.path):
            key = (year.number, month.number)
            if (first and key < (first.year, first.month)) or (
                last and key > (last.year, last.month)
            ):
                continue
            with os.scandir(month.path) as entries:
                for entry in entries:
                    parsed = layout.parse_event_name(entry.name)
                    if parsed is None or entry.is_symlink() or not entry.is_file():
                        continue
                    day = parsed[0]
                    if (first and day < first) or (last and day > last):
                        continue
                    found.append((parsed, Path(entry.path)))
    return [(key[0], path) for key, path in sorted(found)]


class _Numbered:
    __slots__ = ("number", "path")

    def __init__(self, number: int, path: Path) -> None:
        self.number, self.path = number, path


def _numbered(folder: Path) -> list[_Numbered]:
    """The sub-folders of `folder` named by a number (YYYY or MM), links skipped."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return [
            _Numbered(int(e.name), Path(e.path))
            for e in entries
            if e.name.isdigit() and e.is_dir(follow_symlinks=False)
        ]


def relation(
    con: duckdb.DuckDBPyConnection,
    archive: Path | None,
    since: datetime | None,
    until: datetime | None,
) -> str:
    """The FROM item for events in [since, until): the hot table alone when no archive
    file can hold any, else hot UNION ALL archive as a subquery named `events`. Bounds
    and paths are SQL literals, so callers' parameters keep their places."""
    if archive is None:
        return HOT
    files = event_files(archive, since, until)
    if not files:
        return HOT
    both = _days_in_both(con, sorted({day for day, _ in files}))
    plain = [path for day, path in files if day not in both]
    mixed = [path for day, path in files if day in both]
    branches = [f"SELECT {_COLUMNS} FROM {HOT}{_outside(both)}"]  # noqa: S608 - literals
    if plain:
        branches.append(_parquet(plain))
    if mixed:
        branches.append(_deduped(both, mixed))
    union = "\n UNION ALL BY NAME ".join(branches)
    return f"(SELECT {_TYPED} FROM ({union})) AS {HOT}"  # noqa: S608 - literals


def _days_in_both(con: duckdb.DuckDBPyConnection, days: list[date]) -> set[date]:
    """The archived days that also have hot rows (one range query, narrowed by zone maps:
    archived days are older than what the hot store keeps)."""
    rows = con.execute(
        f"SELECT DISTINCT CAST(ts AS DATE) FROM {HOT} WHERE ts >= ? AND ts < ?",  # noqa: S608
        [_midnight(days[0]), _midnight(days[-1]) + _DAY],
    ).fetchall()
    archived = set(days)
    return {row[0] for row in rows if row[0] in archived}


def _ranges(days: set[date]) -> list[tuple[datetime, datetime]]:
    """Consecutive days merged into [start, end) ranges."""
    out: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        start = _midnight(day)
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], start + _DAY)
        else:
            out.append((start, start + _DAY))
    return out


def _in_days(days: set[date]) -> str:
    return " OR ".join(f"(ts >= {_stamp(a)} AND ts < {_stamp(b)})" for a, b in _ranges(days))


def _outside(days: set[date]) -> str:
    return f" WHERE NOT ({_in_days(days)})" if days else ""


def _parquet(paths: list[Path]) -> str:
    listed = ", ".join(_text(str(p)) for p in paths)
    return f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"  # noqa: S608


def _deduped(days: set[date], paths: list[Path]) -> str:
    """The days in both places, one row per event id: complete before provisional, then
    hot before archived."""
    provisional = _text(PROVISIONAL_NOTE)
    return f"""SELECT * EXCLUDE (_origin, _n) FROM (
        SELECT *, row_number() OVER (
            PARTITION BY event_id
            ORDER BY coalesce(starts_with(note, {provisional}), false), _origin) AS _n
        FROM (SELECT {_COLUMNS}, 0 AS _origin FROM {HOT} WHERE {_in_days(days)}
              UNION ALL BY NAME
              SELECT *, 1 AS _origin FROM ({_parquet(paths)})))
      WHERE _n = 1"""  # noqa: S608 - literals made by _text and _stamp


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _stamp(moment: datetime) -> str:
    return f"TIMESTAMPTZ {_text(moment.isoformat(sep=' '))}"


@contextmanager
def reading(archive: Path | None) -> Iterator[None]:
    """A DuckDB error while an archive may be read becomes a StoreError that names the
    archive and the check to run (a damaged or removed file, most likely)."""
    try:
        yield
    except duckdb.Error as exc:
        if archive is None:
            raise
        raise StoreError(
            f"reading events from the hot store and the archive {archive} failed: "
            f"{clean_error(str(exc))}; run `secretwatch archive verify` to find a damaged "
            "or missing file"
        ) from None
