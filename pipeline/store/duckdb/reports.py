"""Report aggregates on DuckDB (contracts: `ReportSource` in pipeline/store/base.py): one
SQL aggregation each over [since, until)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd


def access_summary(
    con: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime
) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT source, backend, identity, identity_kind, secret, action, operation,
                  outcome, count(*) AS events, min(ts) AS first_ts, max(ts) AS last_ts
           FROM events WHERE {range} GROUP BY ALL""",
        since,
        until,
    )


def hourly_activity(
    con: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime
) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT identity, date_trunc('hour', ts) AS hour, count(*) AS events,
                  count(*) FILTER (WHERE outcome = 'denied') AS denied
           FROM events WHERE {range} GROUP BY ALL""",
        since,
        until,
    )


def source_coverage(
    con: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime
) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT source, backend, date_trunc('day', ts) AS day, count(*) AS events,
                  min(ts) AS first_ts, max(ts) AS last_ts
           FROM events WHERE {range} GROUP BY ALL""",
        since,
        until,
    )


def secret_history(con: duckdb.DuckDBPyConnection, until: datetime) -> pd.DataFrame:
    return _aggregate(
        con,
        """SELECT source, backend, secret, action, operation, outcome, count(*) AS events,
                  min(ts) AS first_ts, max(ts) AS last_ts
           FROM events WHERE {range} AND secret IS NOT NULL GROUP BY ALL""",
        None,
        until,
    )


def _aggregate(
    con: duckdb.DuckDBPyConnection, sql: str, since: datetime | None, until: datetime
) -> pd.DataFrame:
    """Run one report aggregation over [since, until); `{range}` marks the filter."""
    where, params = "ts < ?", [until]
    if since is not None:
        where, params = "ts >= ? AND ts < ?", [since, until]
    frame = con.execute(sql.replace("{range}", where), params).df()
    for name in ("events", "denied"):
        if name in frame:
            frame[name] = frame[name].astype("int64")
    return frame
