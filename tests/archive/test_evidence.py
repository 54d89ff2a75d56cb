"""What is archived beside the events: the day's alerts (kept hot too, for the outbox),
report manifests in signed `report` records, and the key `archive keygen` makes."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archive_helpers import DAY0, day_rows, fill, setup
from typer.testing import CliRunner

from pipeline.archive import keys, layout
from pipeline.archive.reports import archive_manifest
from pipeline.archive.verify import verify
from pipeline.cli import app
from pipeline.store.duckdb import DuckDBStore

BEFORE = (DAY0 + timedelta(days=2)).isoformat()


def alert(alert_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": alert_id,
        "timestamp": at,
        "identity": "orders-api",
        "severity": "high",
        "detectors": ["rate_spike"],
        "score": 9.5,
        "window_start": at - timedelta(minutes=5),
        "window_end": at,
        "explanation": "reads far above baseline",
        "evidence_count": 12,
        "baseline_version": 1,
    }


def test_the_days_alerts_are_archived_once_and_kept_hot(tmp_path: Path) -> None:
    config, store, folder, _ = setup(tmp_path)
    fill(store, days=3, per_day=5)
    noon = datetime.combine(DAY0, datetime.min.time(), UTC) + timedelta(hours=12)
    with DuckDBStore(store) as s:
        s.save_detection([], {}, [alert("a-1", noon), alert("a-2", noon + timedelta(days=2))], 1)
    result = CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)])
    assert result.exit_code == 0, result.stderr
    assert "1 alerts" in result.stdout
    (path,) = (folder / "alerts").rglob("*.jsonl")
    assert path == layout.alerts_file(folder, DAY0, 0)
    (kept,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert kept["id"] == "a-1" and kept["revision"] == 1 and "rate_spike" in kept["body"]
    with DuckDBStore(store, read_only=True) as s:
        assert len(s.alerts()) == 2  # alerts stay in the hot store: the outbox needs them
    record = json.loads(layout.digest_file(folder, DAY0, 0).read_text())
    assert [f["kind"] for f in record["files"]].count("alerts") == 1
    assert not verify(folder).problems


def test_a_report_manifest_is_signed_into_the_chain(tmp_path: Path) -> None:
    _, _, folder, key_file = setup(tmp_path)
    report = tmp_path / "access-review-2026Q3"
    report.mkdir()
    (report / "manifest.json").write_text('{"files": {}}\n')
    key = keys.load_private_file(key_file)
    when = datetime(2026, 10, 2, 8, 0, tzinfo=UTC)
    copy = archive_manifest(folder, key, report / "manifest.json", when)
    assert copy.read_bytes() == (report / "manifest.json").read_bytes()
    assert copy.name == "2026-10-02T080000Z.access-review-2026Q3.manifest.json"
    record = json.loads(layout.digest_file(folder, when.date(), 0).read_text())
    assert record["kind"] == "report" and record["files"][0]["path"] == f"reports/{copy.name}"
    assert not verify(folder).problems
    copy.write_text("{}\n")
    assert any(p.startswith("changed file reports/") for p in verify(folder).problems)


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    result = CliRunner().invoke(app, ["archive", "keygen", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    public = keys.load_public(out.with_name("k.pem.pub"))
    assert f"fingerprint sha256 {keys.fingerprint(public)}" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    again = CliRunner().invoke(app, ["archive", "keygen", "--out", str(out)])
    assert again.exit_code == 2 and "never overwrites" in again.stderr


def test_a_key_that_is_not_ed25519_is_refused_by_name(tmp_path: Path) -> None:
    config, store, _, key_file = setup(tmp_path)
    fill(store, days=1, per_day=2)
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n")
    result = CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)])
    assert result.exit_code == 2
    assert str(key_file) in result.stderr.replace("\n", "") and "not really" not in result.stderr


def test_the_key_can_come_from_an_environment_variable(tmp_path: Path, monkeypatch: Any) -> None:
    config, store, folder, key_file = setup(tmp_path)
    fill(store, days=1, per_day=2)
    monkeypatch.setenv("SW_ARCHIVE_KEY", key_file.read_text())
    config.write_text(
        config.read_text().replace(f"key_file: {key_file}", "key_env: SW_ARCHIVE_KEY")
    )
    result = CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)])
    assert result.exit_code == 0, result.stderr
    assert not verify(folder, keys.load_public(key_file.with_name(key_file.name + ".pub"))).problems


def test_prune_command_removes_only_past_archive_years_and_verify_passes(tmp_path: Path) -> None:
    config, store, folder, _ = setup(tmp_path, archive_years=1)
    fill(store, days=2, per_day=3)
    assert (
        CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)]).exit_code == 0
    )
    dry = CliRunner().invoke(app, ["archive", "prune", "--dry-run", "-c", str(config)])
    assert dry.exit_code == 0 and "6 files before" in dry.stdout and "would remove" in dry.stdout
    assert len(layout.event_files(folder, None, None)) == 6
    done = CliRunner().invoke(app, ["archive", "prune", "-c", str(config)])
    assert done.exit_code == 0, done.stderr
    assert "prune record" in done.stdout and not layout.event_files(folder, None, None)
    checked = CliRunner().invoke(app, ["archive", "verify", "-c", str(config)])
    assert checked.exit_code == 0, checked.stderr
    assert "6 pruned files" in checked.stdout and "3 records, 2 days, 0 files" in checked.stdout


def test_a_resolved_alert_is_archived_again_at_its_new_revision(tmp_path: Path) -> None:
    config, store, folder, _ = setup(tmp_path)
    fill(store, days=3, per_day=5)
    noon = datetime.combine(DAY0, datetime.min.time(), UTC) + timedelta(hours=12)
    with DuckDBStore(store) as s:
        s.save_detection([], {}, [alert("a-1", noon)], 1)
    assert (
        CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)]).exit_code == 0
    )
    with DuckDBStore(store) as s:
        s.resolve_alert("a-1", "false_positive", "ana", "backup job", noon + timedelta(days=3))
        s.write_batch(day_rows(DAY0, "vault", 5)[:1])  # an archived event ingested again
    again = CliRunner().invoke(app, ["archive", "--before", BEFORE, "-c", str(config)])
    assert again.exit_code == 0, again.stderr
    assert "0 events and 1 alerts" in again.stdout
    second = layout.alerts_file(folder, DAY0, 1)
    (kept,) = [json.loads(line) for line in second.read_text().splitlines()]
    assert (kept["id"], kept["revision"], kept["resolution"]) == ("a-1", 2, "false_positive")
    assert not list(folder.rglob("*" + layout.TMP_SUFFIX))
    assert not verify(folder).problems


def test_report_with_an_archive_configured_archives_its_manifest(tmp_path: Path) -> None:
    config, store, folder, _ = setup(tmp_path)
    fill(store, days=2, per_day=3)
    out = tmp_path / "review"
    args = ["report", "--from", "2024-03-01", "--to", "2024-03-02", "--out", str(out)]
    done = CliRunner().invoke(app, [*args, "-c", str(config)])
    assert done.exit_code == 0, done.stderr
    (copy,) = (folder / "reports").iterdir()
    assert copy.name.endswith(".review.manifest.json")
    assert copy.read_bytes() == (out / "manifest.json").read_bytes()
    assert "manifest archived as" in done.stderr
    checked = verify(folder)
    assert not checked.problems and checked.files == 1
