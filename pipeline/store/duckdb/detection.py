"""Detection state on DuckDB (contracts: `DetectionState` in pipeline/store/base.py):
baselines, detection state and the alerts detection writes, saved inside the caller's
transaction so a restart resumes exactly where the stored watermark says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import orjson

from pipeline.store import outbox_rules as rules
from pipeline.store.duckdb.connection import now as clock

# A changed body is a new revision for the sinks; an identical one is not.
_REVISION = rules.upserted_revision_sql("alerts.revision", "alerts.body", "excluded.body")
_UPSERT_ALERT = f"""INSERT INTO alerts (id, ts, identity, severity, detectors, score,
      window_start, window_end, explanation, evidence_count,
      baseline_version, body, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET ts = excluded.ts,
      revision = {_REVISION},
      severity = excluded.severity, detectors = excluded.detectors,
      score = excluded.score, window_start = excluded.window_start,
      window_end = excluded.window_end, explanation = excluded.explanation,
      evidence_count = excluded.evidence_count,
      baseline_version = excluded.baseline_version, body = excluded.body,
      updated_at = excluded.updated_at"""  # noqa: S608 - constants only


def save(
    con: duckdb.DuckDBPyConnection,
    baselines: Sequence[tuple[str, bytes]],
    state: Mapping[str, bytes],
    alerts: Sequence[Mapping[str, Any]],
    version: int,
    replace: bool,
) -> None:
    """Store baselines, detection state and new or grown alerts. `replace` drops all
    previous baselines first (a retrain)."""
    now = clock()
    if replace:
        con.execute("DELETE FROM baselines")
    if baselines:
        con.executemany(
            "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?)",
            [[identity, version, body, now] for identity, body in baselines],
        )
    for key, value in state.items():
        con.execute("INSERT OR REPLACE INTO detection_state VALUES (?, ?, ?)", [key, value, now])
    if alerts:
        con.executemany(_UPSERT_ALERT, [_alert_row(a, now) for a in alerts])


def baselines(
    con: duckdb.DuckDBPyConnection, identities: Sequence[str] | None
) -> list[tuple[str, bytes]]:
    if identities is None:
        rows = con.execute("SELECT identity, body FROM baselines ORDER BY identity")
    else:
        rows = con.execute(
            "SELECT identity, body FROM baselines WHERE list_contains(?, identity) "
            "ORDER BY identity",
            [list(identities)],
        )
    return [(identity, bytes(body)) for identity, body in rows.fetchall()]


def detection_state(con: duckdb.DuckDBPyConnection, key: str) -> bytes | None:
    row = con.execute("SELECT value FROM detection_state WHERE key = ?", [key]).fetchone()
    return bytes(row[0]) if row else None


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
