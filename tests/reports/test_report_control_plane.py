"""Control-plane changes in the access review: a policy written or an audit device disabled
names what changed, not a secret anyone read, so the review's secret tables do not list
them (they count as `other` on no secret, as before they had an action of their own)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from pipeline.record import CONTROL_NOTE, TAMPER_NOTE, EventRow
from pipeline.reports import period
from pipeline.reports.run import generate
from pipeline.reports.settings import ReportConfig
from pipeline.store.duckdb import DuckDBStore


def _row(
    n: int, identity: str, secret: str, action: str, operation: str, note: str | None
) -> EventRow:
    ts = int(datetime(2026, 8, 3, 10, n, tzinfo=UTC).timestamp() * 1_000_000)
    return EventRow(
        f"e{n}", ts, "vault", "vault", identity, "service", secret, action, operation,
        "success", "10.0.0.1", None, f"r{n}", None, note,
    )  # fmt: skip


def test_control_events_are_not_secrets_in_the_review(tmp_path: Path) -> None:
    rows = [
        _row(1, "orders-api", "secret/apps/orders/db", "read", "read", None),
        _row(2, "admin", "sys/policies/acl/app-read", "control", "policy-write",
             CONTROL_NOTE + "wrote the ACL policy app-read"),
        _row(3, "admin", "sys/audit/file", "control", "audit-disable",
             TAMPER_NOTE + "disabled the Vault audit device file/"),
    ]  # fmt: skip
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        store.write_batch(rows)
    out = tmp_path / "report"
    with DuckDBStore(tmp_path / "store.duckdb", read_only=True) as store:
        generate(store, "duckdb", period.quarter("2026Q3"), ReportConfig(), out)
    with (out / "csv" / "secrets.csv").open(newline="") as handle:
        secrets = {r["secret"] for r in csv.DictReader(handle)}
    assert secrets == {"secret/apps/orders/db"}
    with (out / "csv" / "identities.csv").open(newline="") as handle:
        identities = {r["identity"] for r in csv.DictReader(handle)}
    assert {"orders-api", "admin"} <= identities  # still counted as the identity's activity
