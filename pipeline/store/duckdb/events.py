"""The event log on DuckDB (contracts: `EventLog` in pipeline/store/base.py): events, dead
letters and checkpoints, written inside the caller's transaction, and the reads over them
(over the archived days too when the store has an archive: archived.py).

Idempotency without a primary-key index (which costs more than the rest of ingest): an
event's id always comes with the same timestamp, so a batch is checked only against the ids
stored in its own time range, which DuckDB finds by zone maps, and only the ids found come
back. The exception, a provisional event and the complete record that replaces it, is
looked for up to `_PROVISIONAL_US` earlier. A range padded by an hour for every id made a
stream's writes slow down as the hour filled: every id of the last hour was read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.errors import StoreError
from pipeline.record import PROVISIONAL_NOTE, EventRow, provisional
from pipeline.sources.base import DeadLetter
from pipeline.store.base import GROUPABLE, Checkpoint, EventFilter
from pipeline.store.duckdb import archived
from pipeline.store.duckdb.connection import now
from pipeline.store.rows import EVENT_COLUMNS, dedupe, ids_batch, rows_to_batch

_PROVISIONAL_US = 3_600_000_000  # how much earlier a provisional event may be than its record
_AT = "make_timestamp({}::BIGINT)::TIMESTAMPTZ"
_PROVISIONAL = "coalesce(starts_with(note, $p), false)"  # `record.provisional`, in SQL
_COLUMNS = ", ".join(EVENT_COLUMNS)


# -- writes (inside the caller's transaction) ---------------------------------------------
def write_batch(
    con: duckdb.DuckDBPyConnection,
    rows: list[EventRow],
    dead: Sequence[DeadLetter],
    checkpoints: Sequence[Checkpoint],
) -> int:
    """Store events, dead letters and checkpoints; return how many events were new."""
    inserted = _insert_events(con, dedupe(rows)) if rows else 0
    if dead:
        _insert_dead(con, dead)
    for cp in checkpoints:
        con.execute(
            """INSERT OR REPLACE INTO checkpoints
               (key, path, device, inode, "offset", line, updated_at, fingerprint)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [cp.key, cp.path, cp.device, cp.inode, cp.offset, cp.line, now(), cp.fingerprint],
        )
    return inserted


def _insert_events(con: duckdb.DuckDBPyConnection, rows: list[EventRow]) -> int:
    """Insert the rows whose ids are not stored yet; return how many that was."""
    stamps = [r[1] for r in rows]
    lo, hi = min(stamps), max(stamps)
    ids = ids_batch([r[0] for r in rows])  # noqa: F841
    # Only ids already stored come back, found by zone maps on `ts`. A provisional event
    # (a Vault request without its response yet, a Kubernetes watch started) is earlier
    # than the complete record that replaces it, by at most the request's duration: that
    # pair is looked for `_PROVISIONAL_US` either way, and such events are few.
    stored = con.execute(
        f"""SELECT event_id, {_PROVISIONAL} FROM events
            WHERE ts BETWEEN {_AT.format("$lo")} AND {_AT.format("$hi")}
              AND event_id IN (SELECT event_id FROM ids)
            UNION ALL
            SELECT event_id, true FROM events
            WHERE {_PROVISIONAL} AND ts BETWEEN {_AT.format("$early")} AND {_AT.format("$hi")}
              AND event_id IN (SELECT event_id FROM ids)""",  # noqa: S608 - constants
        {"p": PROVISIONAL_NOTE, "lo": lo, "hi": hi, "early": lo - _PROVISIONAL_US},
    ).fetchall()
    lone = [r[0] for r in rows if provisional(r.note)]
    if lone:  # is the complete record already stored, a little later?
        stored += con.execute(
            f"""SELECT event_id, {_PROVISIONAL} FROM events
                WHERE ts BETWEEN {_AT.format("$lo")} AND {_AT.format("$late")}
                  AND list_contains($lone, event_id)""",  # noqa: S608 - constants
            {"p": PROVISIONAL_NOTE, "lo": lo, "late": hi + _PROVISIONAL_US, "lone": lone},
        ).fetchall()
    if stored:
        known = {event_id: was for event_id, was in stored}  # id -> stored as provisional
        # A complete record replaces a provisional one stored earlier under its id.
        upgrades = [r[0] for r in rows if known.get(r[0]) and not provisional(r.note)]
        if upgrades:
            con.execute("DELETE FROM events WHERE list_contains(?, event_id)", [upgrades])
            for event_id in upgrades:
                del known[event_id]
        rows = [r for r in rows if r[0] not in known]
        if not rows:
            return 0
    batch = rows_to_batch(rows)  # noqa: F841 - DuckDB reads it by name in the SQL below
    con.execute(f"INSERT INTO events ({_COLUMNS}) SELECT * FROM batch")  # noqa: S608
    return len(rows)


def _insert_dead(con: duckdb.DuckDBPyConnection, dead: Sequence[DeadLetter]) -> None:
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
    con.execute(
        """INSERT INTO dead_letters
           SELECT t.file, t.line, t."offset", t.idx, t.format, t.reason, t.raw, ?
           FROM "table" t WHERE NOT EXISTS (
             SELECT 1 FROM dead_letters d WHERE d.file = t.file AND d."offset" = t."offset"
             AND d.idx IS NOT DISTINCT FROM t.idx AND d.reason = t.reason
             AND d.raw IS NOT DISTINCT FROM t.raw)""",
        [now()],
    )


# -- reads (over the hot table, and the archive when one is given: archived.py) -------------
def events(
    con: duckdb.DuckDBPyConnection,
    where: EventFilter,
    limit: int | None,
    newest_first: bool,
    archive: Path | None = None,
) -> pd.DataFrame:
    clause, params = where_clause(where)
    order = "DESC" if newest_first else "ASC"
    with archived.reading(archive):
        source = archived.relation(con, archive, where.since, where.until)
        sql = f"SELECT * FROM {source} {clause} ORDER BY ts {order}, event_id"  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return con.execute(sql, params).df()


def count(con: duckdb.DuckDBPyConnection, where: EventFilter, archive: Path | None = None) -> int:
    clause, params = where_clause(where)
    with archived.reading(archive):
        source = archived.relation(con, archive, where.since, where.until)
        row = con.execute(f"SELECT count(*) FROM {source} {clause}", params).fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def stats(
    con: duckdb.DuckDBPyConnection,
    by: str,
    where: EventFilter,
    limit: int | None,
    archive: Path | None = None,
) -> pd.DataFrame:
    if by not in GROUPABLE:
        raise StoreError(f"cannot group by {by!r}; choose one of {', '.join(GROUPABLE)}")
    clause, params = where_clause(where)
    with archived.reading(archive):
        source = archived.relation(con, archive, where.since, where.until)
        sql = f"""SELECT {by}, count(*) AS events,
                    count(*) FILTER (WHERE outcome = 'denied') AS denied,
                    min(ts) AS first_seen, max(ts) AS last_seen
                  FROM {source} {clause} GROUP BY {by} ORDER BY events DESC, {by}"""  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return con.execute(sql, params).df()


def dead_letters(con: duckdb.DuckDBPyConnection, limit: int | None) -> pd.DataFrame:
    """Hot only: dead letters are never archived."""
    sql = 'SELECT * FROM dead_letters ORDER BY recorded_at, file, "offset"'
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql).df()


def checkpoint(con: duckdb.DuckDBPyConnection, key: str) -> Checkpoint | None:
    row = con.execute(
        'SELECT key, path, device, inode, "offset", line, fingerprint FROM checkpoints '
        "WHERE key = ?",
        [key],
    ).fetchone()
    return Checkpoint(*row) if row else None


def where_clause(where: EventFilter) -> tuple[str, list[object]]:
    """An EventFilter as a WHERE clause (empty for none) and its parameters; `*` in
    `identity` and `secret` is a wildcard, every other character literal."""
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
