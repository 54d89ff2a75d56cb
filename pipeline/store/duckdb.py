"""Embedded store: one DuckDB file, written in Arrow batches, no server.

Idempotency without a primary-key index (which costs more than the rest of ingest): an
event's id always comes with the same timestamp, so a batch is checked only against the ids
stored in its own time range (padded by an hour), which DuckDB finds by zone maps; in a
stream that range holds little beyond the previous batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import pyarrow as pa

from pipeline.errors import StoreError
from pipeline.paths import make_folder
from pipeline.record import FIELDS, PROVISIONAL_NOTE, EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store.base import (
    ALL_EVENTS,
    DELIVERY_STATES,
    GROUPABLE,
    RESOLUTIONS,
    Checkpoint,
    DeliveryOutcome,
    EventFilter,
    PendingDelivery,
)

_HOUR_US = 3_600_000_000
MAX_ERROR = 2000  # characters of a delivery error kept

# An alert's delivery revision: its own (body and verdict changes) plus the repeats folded
# into it. `a` is the alerts table, `f` the fold counts below, `fo` its own fold verdict.
_FOLDS = """WITH folds AS (SELECT into_id, count(*) AS n FROM alert_folds
                            WHERE into_id IS NOT NULL GROUP BY into_id)"""
_FOLD_JOINS = """LEFT JOIN folds f ON f.into_id = a.id
                 LEFT JOIN alert_folds fo ON fo.alert_id = a.id"""
_REVISION = "(a.revision + coalesce(f.n, 0))"
UPSERT_DELIVERIES = """INSERT INTO deliveries SELECT * FROM outcome_rows
    ON CONFLICT (alert_id, sink) DO UPDATE SET
      delivered_revision = greatest(deliveries.delivered_revision, excluded.delivered_revision),
      state = excluded.state, attempts = excluded.attempts,
      next_attempt_at = excluded.next_attempt_at, last_status = excluded.last_status,
      last_error = excluded.last_error, first_failed_at = excluded.first_failed_at,
      delivered_at = coalesce(excluded.delivered_at, deliveries.delivered_at),
      updated_at = excluded.updated_at"""

# Each entry upgrades the schema by one version; never edit a released entry, append one.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE events (
            event_id VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
            backend VARCHAR NOT NULL, identity VARCHAR NOT NULL, identity_kind VARCHAR NOT NULL,
            secret VARCHAR, action VARCHAR NOT NULL, operation VARCHAR NOT NULL,
            outcome VARCHAR NOT NULL, source_ip VARCHAR, user_agent VARCHAR,
            request_id VARCHAR, error VARCHAR, note VARCHAR)""",
        """CREATE TABLE dead_letters (
            file VARCHAR NOT NULL, line BIGINT NOT NULL, "offset" BIGINT NOT NULL,
            idx VARCHAR, format VARCHAR, reason VARCHAR NOT NULL, raw BLOB,
            recorded_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE checkpoints (
            key VARCHAR PRIMARY KEY, path VARCHAR NOT NULL, device UBIGINT NOT NULL,
            inode UBIGINT NOT NULL, "offset" BIGINT NOT NULL, line BIGINT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL)""",
    ],
    ["ALTER TABLE checkpoints ADD COLUMN fingerprint VARCHAR"],
    [
        """CREATE TABLE baselines (
            identity VARCHAR PRIMARY KEY, version BIGINT NOT NULL, body BLOB NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE detection_state (
            key VARCHAR PRIMARY KEY, value BLOB NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE alerts (
            id VARCHAR PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, identity VARCHAR NOT NULL,
            severity VARCHAR NOT NULL, detectors VARCHAR NOT NULL, score DOUBLE NOT NULL,
            window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ NOT NULL,
            explanation VARCHAR NOT NULL, evidence_count BIGINT NOT NULL,
            baseline_version BIGINT NOT NULL, body VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""",
    ],
    [  # the alert outbox: revisions, analyst verdicts, per-sink delivery, folded repeats
        "ALTER TABLE alerts ADD COLUMN revision BIGINT DEFAULT 1",
        "ALTER TABLE alerts ADD COLUMN resolution VARCHAR",
        "ALTER TABLE alerts ADD COLUMN resolved_by VARCHAR",
        "ALTER TABLE alerts ADD COLUMN resolved_at TIMESTAMPTZ",
        "ALTER TABLE alerts ADD COLUMN note VARCHAR",
        """CREATE TABLE deliveries (
            alert_id VARCHAR NOT NULL, sink VARCHAR NOT NULL,
            delivered_revision BIGINT NOT NULL, state VARCHAR NOT NULL,
            attempts BIGINT NOT NULL, next_attempt_at TIMESTAMPTZ, last_status INTEGER,
            last_error VARCHAR, first_failed_at TIMESTAMPTZ, delivered_at TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (alert_id, sink))""",
        """CREATE TABLE alert_folds (
            alert_id VARCHAR PRIMARY KEY, into_id VARCHAR, decided_at TIMESTAMPTZ NOT NULL)""",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)

_STRING_FIELDS = [f for f in FIELDS if f != "ts_us"]
_COLUMNS = ", ".join("ts" if f == "ts_us" else f for f in FIELDS)


def rows_to_arrow(rows: list[EventRow]) -> pa.Table:
    """Transpose rows into Arrow columns (C-level zip; no per-field Python loop)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FIELDS)
    arrays = []
    for name, column in zip(FIELDS, columns, strict=True):
        if name == "ts_us":
            arrays.append(pa.array(column, pa.int64()).cast(pa.timestamp("us", tz="UTC")))
        else:
            arrays.append(pa.array(column, pa.string()))
    return pa.Table.from_arrays(arrays, names=["ts" if f == "ts_us" else f for f in FIELDS])


def _dedupe(rows: list[EventRow]) -> list[EventRow]:
    """One row per event_id within a batch: the first, unless a later complete row
    replaces a provisional one (rare; checked cheaply)."""
    ids = [r[0] for r in rows]
    if len(set(ids)) == len(ids):
        return rows
    chosen: dict[str, EventRow] = {}
    for row in rows:
        held = chosen.get(row[0])
        if held is None or (held.note == PROVISIONAL_NOTE and row.note != PROVISIONAL_NOTE):
            chosen[row[0]] = row
    return list(chosen.values())


class DuckDBStore:
    """The embedded default store."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        if self.read_only and not self.path.exists():
            raise StoreError(
                f"store {self.path} does not exist yet; run `secretwatch ingest PATH` first "
                "or point `store.path` in the config at an existing store"
            )
        if not self.read_only:
            try:
                make_folder(self.path.parent)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store folder {self.path.parent}: {exc}"
                ) from exc
        try:
            self._con = duckdb.connect(str(self.path), read_only=self.read_only)
        except duckdb.IOException as exc:
            raise StoreError(_explain_io(self.path, exc)) from exc
        except duckdb.Error as exc:
            raise StoreError(f"store {self.path} cannot be opened: {exc}") from exc
        try:
            self._con.execute("SET TimeZone = 'UTC'")
            self._migrate()
        except BaseException:
            self.close()  # a refused store must not stay open (and locked) in this process
            raise

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> DuckDBStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError("store is not open; call open() first")
        return self._con

    def schema_version(self) -> int:
        has_meta = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        ).fetchone()
        if not has_meta or not has_meta[0]:
            return 0
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this secretwatch "
                f"understands ({SCHEMA_VERSION}); upgrade secretwatch"
            )
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(
                f"store {self.path} has schema version {current}; open it once writable "
                f"(e.g. `secretwatch ingest`) to migrate it to {SCHEMA_VERSION}"
            )
        con = self.con
        con.execute("BEGIN")
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                con.execute(statement)
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
        )
        con.execute("COMMIT")

    # -- writes --------------------------------------------------------------------------
    def write_batch(
        self,
        rows: list[EventRow],
        dead: Sequence[DeadLetter] = (),
        checkpoints: Sequence[Checkpoint] = (),
    ) -> int:
        con = self.con
        inserted = 0
        con.execute("BEGIN")
        try:
            if rows:
                inserted = self._insert_events(_dedupe(rows))
            if dead:
                self._insert_dead(dead)
            for cp in checkpoints:
                con.execute(
                    """INSERT OR REPLACE INTO checkpoints
                       (key, path, device, inode, "offset", line, updated_at, fingerprint)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        cp.key,
                        cp.path,
                        cp.device,
                        cp.inode,
                        cp.offset,
                        cp.line,
                        _now(),
                        cp.fingerprint,
                    ],
                )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"writing to store {self.path} failed: {exc}") from exc
        except BaseException:
            con.execute("ROLLBACK")  # leave no open transaction behind, whatever failed
            raise
        return inserted

    def _insert_events(self, rows: list[EventRow]) -> int:
        """Insert the rows whose ids are not stored yet; return how many that was."""
        stamps = [r[1] for r in rows]
        lo, hi = min(stamps) - _HOUR_US, max(stamps) + _HOUR_US
        stored = self.con.execute(
            """SELECT event_id, note IS NOT DISTINCT FROM ? FROM events
               WHERE ts BETWEEN make_timestamp(?::BIGINT)::TIMESTAMPTZ
                            AND make_timestamp(?::BIGINT)::TIMESTAMPTZ""",
            [PROVISIONAL_NOTE, lo, hi],
        ).fetchall()
        if stored:
            known = {event_id: provisional for event_id, provisional in stored}
            # A complete record replaces a provisional one stored earlier under its id.
            upgrades = [r[0] for r in rows if known.get(r[0]) and r.note != PROVISIONAL_NOTE]
            if upgrades:
                self.con.execute("DELETE FROM events WHERE list_contains(?, event_id)", [upgrades])
                for event_id in upgrades:
                    del known[event_id]
            rows = [r for r in rows if r[0] not in known]
            if not rows:
                return 0
        batch = rows_to_arrow(rows)  # noqa: F841 - DuckDB reads it by name in the SQL below
        self.con.execute(f"INSERT INTO events ({_COLUMNS}) SELECT * FROM batch")  # noqa: S608
        return len(rows)

    def _insert_dead(self, dead: Sequence[DeadLetter]) -> None:
        now = _now()
        table = pa.table(  # noqa: F841 - DuckDB reads it by name in the SQL below
            {
                "file": [d.file for d in dead],
                "line": pa.array([d.line for d in dead], pa.int64()),
                "offset": pa.array([d.offset for d in dead], pa.int64()),
                "idx": [d.index for d in dead],
                "format": [d.format for d in dead],
                "reason": [d.reason for d in dead],
                "raw": pa.array([d.raw for d in dead], pa.binary()),
            }
        )
        self.con.execute(
            """INSERT INTO dead_letters
               SELECT t.file, t.line, t."offset", t.idx, t.format, t.reason, t.raw, ?
               FROM "table" t WHERE NOT EXISTS (
                 SELECT 1 FROM dead_letters d WHERE d.file = t.file AND d."offset" = t."offset"
                 AND d.idx IS NOT DISTINCT FROM t.idx AND d.reason = t.reason
                 AND d.raw IS NOT DISTINCT FROM t.raw)""",
            [now],
        )

    def save_detection(
        self,
        baselines: Sequence[tuple[str, bytes]],
        state: Mapping[str, bytes],
        alerts: Sequence[Mapping[str, Any]],
        version: int,
        replace: bool = False,
    ) -> None:
        """Store baselines, detection state and new or grown alerts in one transaction, so
        a restart resumes exactly where the stored watermark says, with the alerts of
        everything before it. `replace` drops all previous baselines first (a retrain)."""
        con, now = self.con, _now()
        con.execute("BEGIN")
        try:
            if replace:
                con.execute("DELETE FROM baselines")
            if baselines:
                con.executemany(
                    "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?)",
                    [[identity, version, body, now] for identity, body in baselines],
                )
            for key, value in state.items():
                con.execute(
                    "INSERT OR REPLACE INTO detection_state VALUES (?, ?, ?)", [key, value, now]
                )
            if alerts:
                # A changed body is a new revision for the sinks; an identical one is not.
                con.executemany(
                    """INSERT INTO alerts (id, ts, identity, severity, detectors, score,
                         window_start, window_end, explanation, evidence_count,
                         baseline_version, body, created_at, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (id) DO UPDATE SET ts = excluded.ts,
                         revision = CASE WHEN alerts.body IS DISTINCT FROM excluded.body
                                         THEN alerts.revision + 1 ELSE alerts.revision END,
                         severity = excluded.severity, detectors = excluded.detectors,
                         score = excluded.score, window_start = excluded.window_start,
                         window_end = excluded.window_end, explanation = excluded.explanation,
                         evidence_count = excluded.evidence_count,
                         baseline_version = excluded.baseline_version, body = excluded.body,
                         updated_at = excluded.updated_at""",
                    [_alert_row(a, now) for a in alerts],
                )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"writing detection state to store {self.path} failed: {exc}") from exc
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # -- the alert outbox (contracts in store/base.py) -----------------------------------
    def pending_deliveries(self, sink: str, limit: int, now: datetime) -> list[PendingDelivery]:
        rows = self.con.execute(
            f"""{_FOLDS}
            SELECT a.id, {_REVISION}, a.body, a.resolution, a.resolved_by, a.resolved_at,
                   a.note, coalesce(f.n, 0), fo.into_id, fo.alert_id IS NOT NULL, d.state,
                   coalesce(d.attempts, 0), d.first_failed_at, d.last_status,
                   coalesce(d.delivered_revision, 0)
            FROM alerts a {_FOLD_JOINS}
            LEFT JOIN deliveries d ON d.alert_id = a.id AND d.sink = ?
            WHERE {_REVISION} > coalesce(d.delivered_revision, 0)
              AND d.state IS DISTINCT FROM 'dead'
              AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)
            ORDER BY a.created_at, a.id""",  # noqa: S608 - constants only
            [sink, now],
        ).fetchmany(int(limit))  # not LIMIT: DuckDB 2.0.1 drops it over an empty join
        return [
            PendingDelivery(
                r[0],
                int(r[1]),
                orjson.loads(r[2]),
                *r[3:7],
                int(r[7]),
                r[8],
                bool(r[9]),
                r[10],
                int(r[11]),
                r[12],
                r[13],
                int(r[14]),
            )
            for r in rows
        ]

    def record_delivery(
        self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        if not outcomes:
            return
        for o in outcomes:
            if o.state not in DELIVERY_STATES:
                raise StoreError(
                    f"delivery state {o.state!r} of alert {o.alert_id}; valid: "
                    + ", ".join(DELIVERY_STATES)
                )
        settles = ("delivered", "suppressed")
        stamp = pa.timestamp("us", tz="UTC")
        batch = pa.table(
            {
                "alert_id": pa.array([o.alert_id for o in outcomes], pa.string()),
                "sink": pa.array([sink] * len(outcomes), pa.string()),
                "delivered_revision": pa.array(
                    [o.revision if o.state in settles else 0 for o in outcomes], pa.int64()
                ),
                "state": pa.array([o.state for o in outcomes], pa.string()),
                "attempts": pa.array([o.attempts for o in outcomes], pa.int64()),
                "next_attempt_at": pa.array([o.next_attempt_at for o in outcomes], stamp),
                "last_status": pa.array([o.status for o in outcomes], pa.int32()),
                "last_error": pa.array(
                    [(o.error or "")[:MAX_ERROR] or None for o in outcomes], pa.string()
                ),
                "first_failed_at": pa.array([o.first_failed_at for o in outcomes], stamp),
                "delivered_at": pa.array(
                    [now if o.state == "delivered" else None for o in outcomes], stamp
                ),
                "updated_at": pa.array([now] * len(outcomes), stamp),
            }
        )

        # One statement for the batch (executemany costs milliseconds a row).
        def record(con: duckdb.DuckDBPyConnection) -> None:
            con.register("outcome_rows", batch)
            try:
                con.execute(UPSERT_DELIVERIES)
            finally:
                con.unregister("outcome_rows")

        self._transaction("recording deliveries", record)

    def delivery_state(
        self,
        sinks: Sequence[str],
        state: str | None = None,
        alert_id: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        if state is not None and state not in DELIVERY_STATES:
            raise StoreError(f"delivery state {state!r}; valid: {', '.join(DELIVERY_STATES)}")
        # A window, not LIMIT: DuckDB 2.0.1 drops a LIMIT over a join with an empty table.
        cut = (
            f"QUALIFY row_number() OVER (ORDER BY ts DESC, alert_id) <= {int(limit)}"
            if (limit is not None)
            else ""
        )
        return self.con.execute(
            f"""{_FOLDS}, rows AS (
              SELECT a.id AS alert_id, s.sink, a.ts, a.identity, a.severity, a.detectors,
                     {_REVISION} AS revision,
                     coalesce(d.delivered_revision, 0) AS delivered_revision,
                     CASE WHEN d.state = 'dead' THEN 'dead'
                          WHEN {_REVISION} > coalesce(d.delivered_revision, 0) THEN 'pending'
                          ELSE d.state END AS state,
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

    def resolve_alert(
        self, alert_id: str, resolution: str | None, by: str, note: str | None, now: datetime
    ) -> None:
        if resolution is not None and resolution not in RESOLUTIONS:
            raise StoreError(f"resolution {resolution!r}; valid: {', '.join(RESOLUTIONS)}")
        found: list[object] = []
        self._transaction(
            "resolving an alert",
            lambda con: found.extend(
                con.execute(
                    """UPDATE alerts SET resolution = ?, resolved_by = ?, resolved_at = ?,
                         note = ?, revision = revision + 1, updated_at = ?
                       WHERE id = ? RETURNING id""",
                    [
                        resolution,
                        by if resolution else None,
                        now if resolution else None,
                        note,
                        now,
                        alert_id,
                    ],
                ).fetchall()
            ),
        )
        if not found:
            raise StoreError(
                f"no alert {alert_id!r} in store {self.path}; `secretwatch alerts` lists them"
            )

    def redrive(self, sink: str | None = None, alert_id: str | None = None) -> int:
        moved: list[object] = []
        self._transaction(
            "re-driving dead deliveries",
            lambda con: moved.extend(
                con.execute(
                    """UPDATE deliveries SET state = 'pending', attempts = 0,
                         next_attempt_at = NULL, first_failed_at = NULL, updated_at = ?
                       WHERE state = 'dead' AND (?::VARCHAR IS NULL OR sink = ?)
                         AND (?::VARCHAR IS NULL OR alert_id = ?) RETURNING alert_id""",
                    [_now(), sink, sink, alert_id, alert_id],
                ).fetchall()
            ),
        )
        return len(moved)

    def decide_fold(self, alert_id: str, into: str | None, now: datetime) -> str | None:
        if into == alert_id:
            raise StoreError(f"alert {alert_id} cannot be folded into itself")
        decided: list[tuple[str | None]] = []

        def decide(con: duckdb.DuckDBPyConnection) -> None:
            decided.extend(
                con.execute(
                    "SELECT into_id FROM alert_folds WHERE alert_id = ?", [alert_id]
                ).fetchall()
            )
            if not decided:
                con.execute("INSERT INTO alert_folds VALUES (?, ?, ?)", [alert_id, into, now])

        self._transaction("recording a suppression verdict", decide)
        return decided[0][0] if decided else into

    def _transaction(self, doing: str, work: Callable[[duckdb.DuckDBPyConnection], object]) -> None:
        """Run `work(con)` in one transaction; a failure rolls it back whole."""
        con = self.con
        con.execute("BEGIN")
        try:
            work(con)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise StoreError(f"{doing} in store {self.path} failed: {exc}") from exc
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # -- reads ---------------------------------------------------------------------------
    def baselines(self, identities: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
        if identities is None:
            rows = self.con.execute("SELECT identity, body FROM baselines ORDER BY identity")
        else:
            rows = self.con.execute(
                "SELECT identity, body FROM baselines WHERE list_contains(?, identity) "
                "ORDER BY identity",
                [list(identities)],
            )
        return [(identity, bytes(body)) for identity, body in rows.fetchall()]

    def detection_state(self, key: str) -> bytes | None:
        row = self.con.execute("SELECT value FROM detection_state WHERE key = ?", [key]).fetchone()
        return bytes(row[0]) if row else None

    def alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        identity: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Stored alerts, oldest first; `body` holds the full alert as JSON. `identity`
        accepts `*` wildcards, as for events."""
        clause, params = _where(EventFilter(since=since, until=until, identity=identity))
        sql = f"""{_FOLDS}
            SELECT a.* REPLACE ({_REVISION} AS revision), coalesce(f.n, 0) AS repeats,
                   fo.into_id AS folded_into
            FROM alerts a {_FOLD_JOINS} {clause} ORDER BY ts, id"""  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql, params).df()

    def events(
        self,
        where: EventFilter = ALL_EVENTS,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> pd.DataFrame:
        clause, params = _where(where)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM events {clause} ORDER BY ts {order}, event_id"  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql, params).df()

    def count(self, where: EventFilter = ALL_EVENTS) -> int:
        clause, params = _where(where)
        row = self.con.execute(f"SELECT count(*) FROM events {clause}", params).fetchone()  # noqa: S608
        return int(row[0]) if row else 0

    def stats(
        self, by: str, where: EventFilter = ALL_EVENTS, limit: int | None = None
    ) -> pd.DataFrame:
        if by not in GROUPABLE:
            raise StoreError(f"cannot group by {by!r}; choose one of {', '.join(GROUPABLE)}")
        clause, params = _where(where)
        sql = f"""SELECT {by}, count(*) AS events,
                    count(*) FILTER (WHERE outcome = 'denied') AS denied,
                    min(ts) AS first_seen, max(ts) AS last_seen
                  FROM events {clause} GROUP BY {by} ORDER BY events DESC, {by}"""  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql, params).df()

    # -- aggregates for reports (contracts in store/base.py) --------------------------------
    def access_summary(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return self._aggregate(
            """SELECT source, backend, identity, identity_kind, secret, action, operation,
                      outcome, count(*) AS events, min(ts) AS first_ts, max(ts) AS last_ts
               FROM events WHERE {range} GROUP BY ALL""",
            since,
            until,
        )

    def hourly_activity(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return self._aggregate(
            """SELECT identity, date_trunc('hour', ts) AS hour, count(*) AS events,
                      count(*) FILTER (WHERE outcome = 'denied') AS denied
               FROM events WHERE {range} GROUP BY ALL""",
            since,
            until,
        )

    def source_coverage(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return self._aggregate(
            """SELECT source, backend, date_trunc('day', ts) AS day, count(*) AS events,
                      min(ts) AS first_ts, max(ts) AS last_ts
               FROM events WHERE {range} GROUP BY ALL""",
            since,
            until,
        )

    def secret_history(self, until: datetime) -> pd.DataFrame:
        return self._aggregate(
            """SELECT source, backend, secret, action, operation, outcome, count(*) AS events,
                      min(ts) AS first_ts, max(ts) AS last_ts
               FROM events WHERE {range} AND secret IS NOT NULL GROUP BY ALL""",
            None,
            until,
        )

    def _aggregate(self, sql: str, since: datetime | None, until: datetime) -> pd.DataFrame:
        """Run one report aggregation over [since, until); `{range}` marks the filter."""
        where, params = "ts < ?", [until]
        if since is not None:
            where, params = "ts >= ? AND ts < ?", [since, until]
        frame = self.con.execute(sql.replace("{range}", where), params).df()
        for name in ("events", "denied"):
            if name in frame:
                frame[name] = frame[name].astype("int64")
        return frame

    def dead_letters(self, limit: int | None = None) -> pd.DataFrame:
        sql = 'SELECT * FROM dead_letters ORDER BY recorded_at, file, "offset"'
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql).df()

    def checkpoint(self, key: str) -> Checkpoint | None:
        row = self.con.execute(
            'SELECT key, path, device, inode, "offset", line, fingerprint FROM checkpoints '
            "WHERE key = ?",
            [key],
        ).fetchone()
        return Checkpoint(*row) if row else None


def _where(where: EventFilter) -> tuple[str, list[object]]:
    parts: list[str] = []
    params: list[object] = []
    if where.since is not None:
        parts.append("ts >= ?")
        params.append(where.since)
    if where.until is not None:
        parts.append("ts < ?")
        params.append(where.until)
    for name in ("identity", "secret"):
        value = getattr(where, name)
        if value is not None:
            if "*" in value:
                parts.append(f"{name} LIKE ? ESCAPE '\\'")
                escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                params.append(escaped.replace("*", "%"))
            else:
                parts.append(f"{name} = ?")
                params.append(value)
    for name in ("action", "outcome", "source"):
        value = getattr(where, name)
        if value is not None:
            parts.append(f"{name} = ?")
            params.append(value)
    return ("WHERE " + " AND ".join(parts) if parts else ""), params


def _alert_row(alert: Mapping[str, Any], now: datetime) -> list[object]:
    return [
        alert["id"],
        alert["timestamp"],
        alert["identity"],
        alert["severity"],
        ",".join(alert["detectors"]),
        alert["score"],
        alert["window_start"],
        alert["window_end"],
        alert["explanation"],
        alert["evidence_count"],
        alert["baseline_version"],
        orjson.dumps(alert, default=str).decode(),
        now,
        now,
    ]


def _explain_io(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "lock" in text.lower():
        return (
            f"store {path} is in use by another process (a running `secretwatch ingest "
            f"--follow`?); stop it or use another store path. DuckDB said: {text}"
        )
    return f"store {path} cannot be opened: {text}"


def _now() -> datetime:
    return datetime.now(UTC)
