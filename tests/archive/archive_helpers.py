"""Shared by tests/archive: a DuckDB store of events over some days and sources, a config
with an archive and a fresh key, and counting event ids over hot store and archive."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import yaml

from pipeline.archive import keys
from pipeline.record import EventRow
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.duckdb.connection import connect, disconnect

DAY0 = date(2024, 3, 1)
SOURCES = ("vault", "aws", "k8s")


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
    }
    values.update(fields)
    return EventRow(**values)  # type: ignore[arg-type]


def day_rows(day: date, source: str, n: int, tag: str = "") -> list[EventRow]:
    """`n` events of one day and source, spread over the day (the last one at 23:59:59.999999,
    the first at midnight: both belong to the day)."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    step = timedelta(days=1) / max(n, 1)
    out = [row(f"{source}-{day}-{i}{tag}", start + step * i, source) for i in range(n)]
    if n > 1:
        out[-1] = row(
            f"{source}-{day}-{n - 1}{tag}", start + timedelta(days=1, microseconds=-1), source
        )
    return out


def fill(
    store_path: Path, days: int = 4, per_day: int = 50, sources: tuple[str, ...] = SOURCES
) -> int:
    """A store with `days` days from DAY0 of `per_day` events per source; returns the count."""
    rows = [
        r for d in range(days) for s in sources for r in day_rows(DAY0 + timedelta(d), s, per_day)
    ]
    with DuckDBStore(store_path) as store:
        store.write_batch(rows)
    return len(rows)


def setup(tmp: Path, **retention: object) -> tuple[Path, Path, Path, Path]:
    """(config file, store, archive folder, private key file) under `tmp`."""
    key = tmp / "archive.key"
    keys.keygen(key)
    store, archive = tmp / "store.duckdb", tmp / "archive"
    config = tmp / "config.yaml"
    section = {"hot_days": 30, **retention, "archive": {"path": str(archive), "key_file": str(key)}}
    config.write_text(yaml.safe_dump({"store": {"path": str(store)}, "retention": section}))
    return config, store, archive, key


def ids(store_path: Path, archive: Path) -> tuple[Counter[str], Counter[str]]:
    """Event ids (with multiplicity) in the hot store and in the archive's Parquet files."""
    con = connect(store_path, read_only=False)  # as the store opens it: one per process
    try:
        hot = Counter(r[0] for r in con.execute("SELECT event_id FROM events").fetchall())
    finally:
        disconnect(con)
    files = sorted((archive / "events").rglob("*.parquet"))
    cold: Counter[str] = Counter()
    if files:
        mem = duckdb.connect()
        cold = Counter(
            r[0]
            for r in mem.execute(
                "SELECT event_id FROM read_parquet(?)", [[str(f) for f in files]]
            ).fetchall()
        )
        mem.close()
    return hot, cold
