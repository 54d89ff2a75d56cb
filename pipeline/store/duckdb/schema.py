"""The DuckDB store's tables: the migrations that build them, and applying them."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.errors import StoreError

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
    ["ALTER TABLE events ADD COLUMN actor VARCHAR"],  # the person behind a role (record.py)
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
    ).fetchone()
    if not has_meta or not has_meta[0]:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
    """Bring the store to SCHEMA_VERSION in one transaction; refuse a newer store, and a
    read-only one that needs migrating."""
    current = schema_version(con)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {current}, newer than this secretwatch "
            f"understands ({SCHEMA_VERSION}); upgrade secretwatch"
        )
    if current == SCHEMA_VERSION:
        return
    if read_only:
        raise StoreError(
            f"store {path} has schema version {current}; open it once writable "
            f"(e.g. `secretwatch ingest`) to migrate it to {SCHEMA_VERSION}"
        )
    con.execute("BEGIN")
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version - 1]:
            con.execute(statement)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    con.execute("COMMIT")
