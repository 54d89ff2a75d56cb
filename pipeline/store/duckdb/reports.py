"""Report aggregates on DuckDB (contracts: `ReportSource` in pipeline/store/base.py): one
SQL aggregation each over [since, until), of the hot table and, when an archive is given,
of the archived days in the range too (archived.py): DuckDB reads only the columns each
aggregation needs from the Parquet files and aggregates them where they lie."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.store.duckdb import archived


def access_summary(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None,
    until: datetime,
    archive: Path | None = None,
) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT source, backend, identity, identity_kind, secret, action, operation,
                  outcome, count(*) AS events, min(ts) AS first_ts, max(ts) AS last_ts
           FROM {events} WHERE {range} GROUP BY ALL""",
        since,
        until,
        archive,
    )


def hourly_activity(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None,
    until: datetime,
    archive: Path | None = None,
) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT identity, date_trunc('hour', ts) AS hour, count(*) AS events,
                  count(*) FILTER (WHERE outcome = 'denied') AS denied
           FROM {events} WHERE {range} GROUP BY ALL""",
        since,
        until,
        archive,
    )


def source_coverage(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None,
    until: datetime,
    archive: Path | None = None,
) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT source, backend, date_trunc('day', ts) AS day, count(*) AS events,
                  min(ts) AS first_ts, max(ts) AS last_ts
           FROM {events} WHERE {range} GROUP BY ALL""",
        since,
        until,
        archive,
    )


def secret_history(
    con: duckdb.DuckDBPyConnection, until: datetime, archive: Path | None = None
) -> pd.DataFrame:
    """All history by design (when was each secret last read, last rotated): with an
    archive, every archived file before `until`, in one aggregation DuckDB runs over the
    Parquet files' needed columns, never loading the events themselves."""
    return _aggregate(
        con,
        """SELECT source, backend, secret, action, operation, outcome, count(*) AS events,
                  min(ts) AS first_ts, max(ts) AS last_ts
           FROM {events} WHERE {range} AND secret IS NOT NULL GROUP BY ALL""",
        None,
        until,
        archive,
    )


def _aggregate(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    since: datetime | None,
    until: datetime,
    archive: Path | None,
) -> pd.DataFrame:
    """Run one report aggregation over [since, until); `{range}` marks the filter and
    `{events}` the relation read."""
    where, params = "ts < ?", [until]
    if since is not None:
        where, params = "ts >= ? AND ts < ?", [since, until]
    with archived.reading(archive):
        source = archived.relation(con, archive, since, until)
        frame = con.execute(sql.replace("{range}", where).replace("{events}", source), params).df()
    for name in ("events", "denied"):
        if name in frame:
            frame[name] = frame[name].astype("int64")
    return frame
