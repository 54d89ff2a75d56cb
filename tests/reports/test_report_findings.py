"""The generated quarter (quarter_world.py) yields exactly its planted findings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import quarter_world as world

from pipeline.reports import access_review, inventory, period
from pipeline.reports.access_review import Review
from pipeline.reports.run import load_policies
from pipeline.reports.settings import ReportConfig
from pipeline.store.duckdb import DuckDBStore

ARN = world.ARN


@pytest.fixture(scope="module")
def review(quarter_dir: Path, quarter_config: ReportConfig) -> Review:
    evidence = inventory.load(quarter_config.owners, quarter_config.inventory)
    rules, _ = load_policies(quarter_config)
    chosen = period.quarter("2026Q3")
    with DuckDBStore(quarter_dir / "store.duckdb", read_only=True) as store:
        inputs = access_review.read_store(store, chosen, lambda _: None)
    return access_review.build(inputs, chosen, quarter_config, evidence, rules)


def pairs(frame: pd.DataFrame, *columns: str) -> set[tuple]:
    return set(frame[list(columns)].itertuples(index=False, name=None))


def test_unused_secrets(review: Review) -> None:
    assert pairs(review.tables["unused_secrets"], "source", "secret") == {
        ("vault", "secret/team-c/old-token"),
        ("aws", ARN + "prod/app/legacy"),
        ("vault", "secret/team-a/never-used"),
    }
    unused = review.tables["unused_secrets"].set_index("secret")
    assert unused.loc["secret/team-c/old-token", "days_since_read"] == 178  # 04-05 12:00 to 10-01
    assert pd.isna(unused.loc["secret/team-a/never-used", "last_read"])
    assert bool(unused.loc["secret/team-a/never-used", "listed"])


def test_stale_rotations(review: Review) -> None:
    stale = review.tables["stale_rotations"]
    assert pairs(stale, "source", "secret", "status") == {
        ("vault", "secret/team-b/db", "overdue"),
        ("aws", ARN + "prod/app/legacy", "overdue"),
        ("vault", "secret/team-a/api-key", "no evidence"),
        ("vault", "secret/team-c/old-token", "no evidence"),
        ("vault", "secret/team-a/never-used", "no evidence"),
    }
    legacy = stale.set_index("secret").loc[ARN + "prod/app/legacy"]
    # TagResource after the PutSecretValue changed no value: the put is the evidence.
    assert legacy["rotated_by"] == "PutSecretValue"
    assert legacy["last_rotated"] == pd.Timestamp("2026-04-20T12:00:00Z")


def test_rotation_evidence_of_every_source(review: Review) -> None:
    secrets = review.tables["secrets"].set_index(["source", "secret"])
    expected = {
        ("vault", "secret/team-a/db"): "update",
        ("vault", "database/static-creds/reporting"): "update",  # via rotate-role
        ("aws", ARN + "prod/app/db"): "RotateSecret",
        ("gcp", "projects/p/secrets/gcp-key"): "AddSecretVersion",
        ("azure", "kv1/secrets/az-secret"): "SecretSet",
        ("k8s", "shop/db-secret"): "update",
    }
    for key, operation in expected.items():
        assert secrets.loc[key, "rotated_by"] == operation, key
    assert secrets.loc[("vault", "database/creds/app"), "rotation"] == "dynamic"


def test_overbroad_and_unused_grants(review: Review) -> None:
    assert list(review.tables["overbroad_identities"]["identity"]) == ["svc-b"]
    summary = review.tables["grant_summary"].set_index("identity")
    assert summary.loc["svc-b", ["granted", "used"]].tolist() == [4, 1]  # team-c denied
    assert summary.loc["svc-a", ["granted", "used"]].tolist() == [4, 3]
    assert "rotator" not in summary.index  # create/update without read grants no read
    assert pairs(review.tables["unused_grants"], "identity", "secret") == {
        ("svc-a", "secret/team-a/never-used"),
        ("svc-b", "secret/team-a/db"),
        ("svc-b", "secret/team-a/api-key"),
        ("svc-b", "secret/team-a/never-used"),
        (world.ROLE, ARN + "prod/app/legacy"),
    }
    grants = review.tables["grants"].set_index(["identity", "secret"])
    assert grants.loc[("svc-b", "secret/team-b/db"), "rule"] == "secret/data/*"
    assert grants.loc[("svc-a", "database/creds/app"), "granted_by"] == "svc-a"


def test_ownership_gaps(review: Review) -> None:
    assert pairs(review.tables["ownership_gaps"], "source", "secret") == {
        ("vault", "secret/team-c/old-token"),
        ("azure", "kv1/secrets/az-secret"),
    }
    owners = review.tables["secrets"].set_index("secret")
    assert owners.loc["secret/team-a/never-used", "owner_from"] == "inventory"
    assert owners.loc[ARN + "prod/app/db", "owner"] == "app-team"


def test_coverage_gaps(review: Review) -> None:
    gaps = review.tables["coverage_gaps"]
    assert pairs(gaps, "source", "gap_start", "gap_end") == {
        ("vault", pd.Timestamp("2026-08-09T09:00Z"), pd.Timestamp("2026-08-13T09:00Z")),
        ("gcp", pd.Timestamp("2026-09-20T09:00Z"), pd.Timestamp("2026-10-01T00:00Z")),
    }
    status = review.tables["coverage"].set_index("source")["status"].to_dict()
    assert status == {"aws": "complete", "azure": "complete", "gcp": "gaps", "k8s": "complete",
                      "vault": "gaps"}  # fmt: skip


def test_per_secret_and_identity_figures(review: Review) -> None:
    secrets = review.tables["secrets"].set_index("secret")
    team_a = secrets.loc["secret/team-a/db"]
    assert team_a["reads"] == 92 - 3  # every day of the quarter but the vault gap
    assert team_a["denied"] == 5
    assert team_a["first_read"] == pd.Timestamp("2026-07-01T09:00Z")
    identities = review.tables["identities"].set_index("identity")
    assert identities.loc["svc-a", "secrets_read"] == 3
    assert identities.loc["svc-a", "events"] == 4 * 89
    assert identities.loc["svc-a", "hours_active"] == 89
    assert identities.loc["svc-b", "denied"] == 5
    assert identities.loc["svc-b", "hours_active"] == 89 + 1  # the denied probe hour
    denied = review.tables["denied_attempts"]
    assert pairs(denied, "identity", "secret", "denied") == {("svc-b", "secret/team-a/db", 5)}


def test_alerts_with_their_resolution(review: Review) -> None:
    alerts = review.tables["alerts"]
    assert list(zip(alerts["identity"], alerts["resolution"], strict=True)) == [
        ("svc-c", "open"), ("svc-b", "true_positive"), ("svc-b", "false_positive"),
    ]  # fmt: skip
    assert review.tables["identities"].set_index("identity").loc["svc-b", "alerts"] == 2
    s = review.summary
    assert (s["alerts"], s["alerts_open"], s["alerts_true_positive"]) == (3, 1, 1)
    assert s["alerts_false_positive"] == 1


def test_headline_and_notes(review: Review) -> None:
    s = review.summary
    assert (s["unused_secrets"], s["rotation_overdue"], s["rotation_no_evidence"]) == (3, 2, 3)
    assert (s["overbroad_identities"], s["unused_grants"], s["ownership_gaps"]) == (1, 5, 2)
    assert s["coverage_gaps"] == 2
    assert any("missing-policy" in note for note in review.notes)
    assert any("gaps" in note for note in review.notes)


def test_shorter_windows_change_the_findings(quarter_dir: Path, quarter_config: ReportConfig
                                             ) -> None:  # fmt: skip
    """The windows come from config: with 30 days, more secrets are unused and stale."""
    cfg = quarter_config.model_copy(update={"unused_days": 30, "rotation_days": 30})
    chosen = period.quarter("2026Q3")
    with DuckDBStore(quarter_dir / "store.duckdb", read_only=True) as store:
        inputs = access_review.read_store(store, chosen, lambda _: None)
    evidence = inventory.load(cfg.owners, cfg.inventory)
    review = access_review.build(inputs, chosen, cfg, evidence, load_policies(cfg)[0])
    unused = pairs(review.tables["unused_secrets"], "secret")
    assert ("projects/p/secrets/gcp-key",) not in unused  # read until 09-20: within 30 days
    stale = pairs(review.tables["stale_rotations"], "secret")
    assert ("secret/team-a/db",) in stale  # written 08-15: over 30 days before 10-01
    assert ("shop/db-secret",) not in stale  # updated 09-05


def test_period_in_another_time_zone(quarter_dir: Path, quarter_config: ReportConfig) -> None:
    chosen = period.quarter("2026Q3", "America/New_York")
    assert chosen.since == datetime(2026, 7, 1, 4, tzinfo=UTC)
    with DuckDBStore(quarter_dir / "store.duckdb", read_only=True) as store:
        inputs = access_review.read_store(store, chosen, lambda _: None)
    assert inputs.summary["first_ts"].min() == pd.Timestamp("2026-07-01T09:00Z")
