"""The alert outbox on DuckDB (contracts: `Outbox` in pipeline/store/base.py; the rules:
pipeline/store/outbox_rules.py, applied here as SQL over whole tables). Writes run inside
the caller's transaction, one statement per batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import orjson
import pandas as pd
import pyarrow as pa

from pipeline.store import outbox_rules as rules
from pipeline.store.base import DeliveryOutcome, EventFilter, PendingDelivery
from pipeline.store.duckdb.connection import now as clock
from pipeline.store.duckdb.events import where_clause

# `a` is the alerts table, `f` the fold counts (alerts folded into `a`), `fo` the fold
# verdict on `a` itself, `d` a sink's delivery record.
_FOLDS = """WITH folds AS (SELECT into_id, count(*) AS n FROM alert_folds
                            WHERE into_id IS NOT NULL GROUP BY into_id)"""
_FOLD_JOINS = """LEFT JOIN folds f ON f.into_id = a.id
                 LEFT JOIN alert_folds fo ON fo.alert_id = a.id"""
_REVISION = rules.revision_sql("a.revision", "f.n")
_SETTLED = "coalesce(d.delivered_revision, 0)"
# An outcome row over the stored record (`deliveries`): its settled revision and delivery
# time follow the rules, everything else is the outcome's.
_SETTLES = rules.settled_sql("deliveries.delivered_revision", "excluded.delivered_revision")
_DELIVERED_AT = rules.delivered_at_sql("deliveries.delivered_at", "excluded.delivered_at")
_UPSERT_DELIVERIES = f"""INSERT INTO deliveries SELECT * FROM outcome_rows
    ON CONFLICT (alert_id, sink) DO UPDATE SET
      delivered_revision = {_SETTLES},
      state = excluded.state, attempts = excluded.attempts,
      next_attempt_at = excluded.next_attempt_at, last_status = excluded.last_status,
      last_error = excluded.last_error, first_failed_at = excluded.first_failed_at,
      delivered_at = {_DELIVERED_AT}, updated_at = excluded.updated_at"""  # noqa: S608
_STAMP = pa.timestamp("us", tz="UTC")


# -- reads --------------------------------------------------------------------------------
def alerts(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None,
    until: datetime | None,
    identity: str | None,
    limit: int | None,
    alert_id: str | None = None,
) -> pd.DataFrame:
    clause, params = where_clause(EventFilter(since=since, until=until, identity=identity))
    if alert_id is not None:
        clause = f"{clause} AND a.id = ?" if clause else "WHERE a.id = ?"
        params.append(alert_id)
    sql = f"""{_FOLDS}
        SELECT a.* REPLACE ({_REVISION} AS revision), coalesce(f.n, 0) AS repeats,
               fo.into_id AS folded_into
        FROM alerts a {_FOLD_JOINS} {clause} ORDER BY ts, id"""  # noqa: S608
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql, params).df()


def pending(
    con: duckdb.DuckDBPyConnection, sink: str, limit: int, now: datetime
) -> list[PendingDelivery]:
    wanted = rules.wanted_sql("d.state", _REVISION, _SETTLED, "d.next_attempt_at", "?")
    rows = con.execute(
        f"""{_FOLDS}
        SELECT a.id, {_REVISION}, a.body, a.resolution, a.resolved_by, a.resolved_at,
               a.note, coalesce(f.n, 0), fo.into_id, fo.alert_id IS NOT NULL, d.state,
               coalesce(d.attempts, 0), d.first_failed_at, d.last_status, {_SETTLED}
        FROM alerts a {_FOLD_JOINS}
        LEFT JOIN deliveries d ON d.alert_id = a.id AND d.sink = ?
        WHERE {wanted}
        ORDER BY a.created_at, a.id""",  # noqa: S608 - constants only
        [sink, now],
    ).fetchmany(int(limit))  # not LIMIT: DuckDB 2.0.1 drops it over an empty join
    return [
        PendingDelivery(
            alert_id=r[0],
            revision=int(r[1]),
            alert=orjson.loads(r[2]),
            resolution=r[3],
            resolved_by=r[4],
            resolved_at=r[5],
            note=r[6],
            repeats=int(r[7]),
            folded_into=r[8],
            fold_decided=bool(r[9]),
            state=r[10],
            attempts=int(r[11]),
            first_failed_at=r[12],
            last_status=r[13],
            delivered_revision=int(r[14]),
        )
        for r in rows
    ]


def delivery_state(
    con: duckdb.DuckDBPyConnection,
    sinks: Sequence[str],
    state: str | None,
    alert_id: str | None,
    limit: int | None,
) -> pd.DataFrame:
    rules.check_state(state)
    # A window, not LIMIT: DuckDB 2.0.1 drops a LIMIT over a join with an empty table.
    cut = (
        f"QUALIFY row_number() OVER (ORDER BY ts DESC, alert_id) <= {int(limit)}"
        if (limit is not None)
        else ""
    )
    return con.execute(
        f"""{_FOLDS}, rows AS (
          SELECT a.id AS alert_id, s.sink, a.ts, a.identity, a.severity, a.detectors,
                 {_REVISION} AS revision, {_SETTLED} AS delivered_revision,
                 {rules.effective_state_sql("d.state", _REVISION, _SETTLED)} AS state,
                 coalesce(d.attempts, 0) AS attempts, d.next_attempt_at, d.last_status,
                 d.last_error, d.first_failed_at, d.delivered_at, a.resolution,
                 coalesce(f.n, 0) AS repeats, fo.into_id AS folded_into
          FROM alerts a CROSS JOIN (SELECT unnest(?::VARCHAR[]) AS sink) s
          {_FOLD_JOINS}
          LEFT JOIN deliveries d ON d.alert_id = a.id AND d.sink = s.sink),
        picked AS (
          SELECT alert_id, ts FROM rows WHERE (?::VARCHAR IS NULL OR state = ?)
            AND (?::VARCHAR IS NULL OR alert_id = ?)
          GROUP BY alert_id, ts {cut})
        SELECT rows.* FROM rows JOIN picked USING (alert_id)
        WHERE ?::VARCHAR IS NULL OR rows.state = ?
        ORDER BY rows.ts DESC, alert_id, sink""",  # noqa: S608 - constants only
        [list(sinks), state, state, alert_id, alert_id, state, state],
    ).df()


# -- writes (inside the caller's transaction) ---------------------------------------------
def record_delivery(
    con: duckdb.DuckDBPyConnection, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
) -> None:
    """Upsert the batch's records in one statement (executemany costs milliseconds a row);
    the outcomes are checked already."""
    batch = pa.table(
        {
            "alert_id": pa.array([o.alert_id for o in outcomes], pa.string()),
            "sink": pa.array([sink] * len(outcomes), pa.string()),
            "delivered_revision": pa.array([rules.offered(o) for o in outcomes], pa.int64()),
            "state": pa.array([o.state for o in outcomes], pa.string()),
            "attempts": pa.array([o.attempts for o in outcomes], pa.int64()),
            "next_attempt_at": pa.array([o.next_attempt_at for o in outcomes], _STAMP),
            "last_status": pa.array([o.status for o in outcomes], pa.int32()),
            "last_error": pa.array([rules.clip_error(o.error) for o in outcomes], pa.string()),
            "first_failed_at": pa.array([o.first_failed_at for o in outcomes], _STAMP),
            "delivered_at": pa.array(
                [rules.delivered_at(None, o.state, now) for o in outcomes], _STAMP
            ),
            "updated_at": pa.array([now] * len(outcomes), _STAMP),
        }
    )
    con.register("outcome_rows", batch)
    try:
        con.execute(_UPSERT_DELIVERIES)
    finally:
        con.unregister("outcome_rows")


def resolve_alert(
    con: duckdb.DuckDBPyConnection,
    alert_id: str,
    resolution: str | None,
    by: str,
    note: str | None,
    now: datetime,
) -> bool:
    """Store the verdict; whether the alert exists. Counted, not `RETURNING id`: DuckDB
    (2.0) checks an UPDATE ... RETURNING for no write conflict, so a verdict given while
    detection's transaction grew the alert silently undid that growth (`_updated`)."""
    return bool(
        _updated(
            con,
            f"""UPDATE alerts SET resolution = ?, resolved_by = ?, resolved_at = ?, note = ?,
                  revision = {rules.resolved_revision_sql("revision")}, updated_at = ?
                WHERE id = ?""",  # noqa: S608 - constants only
            [*rules.verdict(resolution, by, note, now), now, alert_id],
        )
    )


def _updated(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> int:
    """Run an UPDATE; how many rows it changed (DuckDB answers an UPDATE with its count)."""
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def redrive(con: duckdb.DuckDBPyConnection, sink: str | None, alert_id: str | None) -> int:
    changes = ", ".join(f"{name} = ?" for name in rules.REDRIVEN)
    return _updated(  # counted, not RETURNING: see `resolve_alert`
        con,
        f"""UPDATE deliveries SET {changes}, updated_at = ?
            WHERE state = ? AND (?::VARCHAR IS NULL OR sink = ?)
              AND (?::VARCHAR IS NULL OR alert_id = ?)""",  # noqa: S608 - constants only
        [*rules.REDRIVEN.values(), clock(), rules.DEAD, sink, sink, alert_id, alert_id],
    )


def decide_fold(
    con: duckdb.DuckDBPyConnection, alert_id: str, into: str | None, now: datetime
) -> str | None:
    stored = con.execute("SELECT into_id FROM alert_folds WHERE alert_id = ?", [alert_id])
    verdict = stored.fetchone()
    if verdict is None:
        con.execute("INSERT INTO alert_folds VALUES (?, ?, ?)", [alert_id, into, now])
    return rules.fold_verdict(verdict, into)
