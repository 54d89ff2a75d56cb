"""`secretwatch report` end to end: files, byte-identical reruns, the manifest, errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ENV_VAR
from pipeline.reports import manifest
from pipeline.reports.rotation import is_new_value
from pipeline.sources import k8s
from pipeline.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "alerts", "controls", "coverage", "coverage_gaps", "denied_attempts", "grant_summary",
    "grants", "identities", "overbroad_identities", "ownership_gaps", "secret_accessors",
    "secrets", "stale_rotations", "unused_grants", "unused_secrets",
}  # fmt: skip


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", ENV_VAR: None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def report(quarter_dir: Path, out: Path, *extra: str) -> tuple[int, str]:
    return run(
        "report", "--quarter", "2026Q3", "--store", str(quarter_dir / "store.duckdb"),
        "--out", str(out), "--owners", str(quarter_dir / "owners.yaml"),
        "--inventory", str(quarter_dir / "inventory.yaml"),
        "--policies", str(quarter_dir / "policies"), *extra,
    )  # fmt: skip


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def first(quarter_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "q3"
    code, output = report(quarter_dir, out)
    assert code == 0, output
    return out


def test_every_table_as_csv_and_json(first: Path) -> None:
    files = set(digests(first))
    assert {f"csv/{t}.csv" for t in TABLES} <= files
    assert {f"json/{t}.json" for t in TABLES} <= files
    assert {"report.html", "summary.json", "manifest.json"} <= files
    unused = orjson.loads((first / "json" / "unused_secrets.json").read_bytes())
    assert {row["secret"] for row in unused} == {
        "secret/team-c/old-token", "secret/team-a/never-used",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/app/legacy",
    }  # fmt: skip
    header = (first / "csv" / "stale_rotations.csv").read_text().splitlines()[0]
    assert header.startswith("source,backend,secret,owner,first_seen,last_rotated")
    assert "2026-04-10T12:00:00Z" in (first / "csv" / "stale_rotations.csv").read_text()


def test_rerun_is_byte_identical(first: Path, quarter_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    code, output = report(quarter_dir, again)
    assert code == 0, output
    assert digests(again) == digests(first)
    # Rewriting into an earlier report's folder replaces it, also byte for byte.
    code, output = report(quarter_dir, again)
    assert code == 0, output
    assert digests(again) == digests(first)


def test_manifest_lists_and_verifies_every_file(first: Path, tmp_path: Path) -> None:
    body = orjson.loads((first / "manifest.json").read_bytes())
    listed = {entry["path"]: entry["sha256"] for entry in body["files"]}
    actual = digests(first)
    actual.pop("manifest.json")
    assert listed == actual
    assert body["parameters"]["period"] == "2026Q3"
    assert body["parameters"]["unused_days"] == 90
    assert set(body["parameters"]["policies_sha256"]) == {"svc-a", "svc-b", "rotator"}
    state = body["store_state"]
    assert state["events_total"] > 0 and state["store"] == "duckdb"
    assert set(state["aggregates_sha256"]) == {
        "access_summary",
        "alerts",
        "hourly_activity",
        "secret_history",
        "source_coverage",
    }
    assert manifest.verify(first) == []
    code, output = run("report", "--verify", str(first))
    assert code == 0 and "every file matches" in output


def test_tampering_is_detected(first: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    target = copy / "csv" / "unused_secrets.csv"
    target.write_text(target.read_text().replace("team-c", "team-x"))
    (copy / "json" / "ownership_gaps.json").unlink()
    (copy / "extra.txt").write_text("added later")
    problems = manifest.verify(copy)
    assert "csv/unused_secrets.csv: SHA-256 differs from the manifest" in problems
    assert "json/ownership_gaps.json: missing" in problems
    assert "extra.txt: not in the manifest" in problems
    body = orjson.loads((copy / "manifest.json").read_bytes())
    body["parameters"]["unused_days"] = 365
    (copy / "manifest.json").write_bytes(orjson.dumps(body))
    assert "parameters do not match parameters_sha256" in manifest.verify(copy)
    code, output = run("report", "--verify", str(copy))
    assert code == 1 and "differs" in output


def test_changed_evidence_changes_parameters(first: Path, quarter_dir: Path, tmp_path: Path
                                             ) -> None:  # fmt: skip
    owners = tmp_path / "owners.yaml"
    owners.write_text((quarter_dir / "owners.yaml").read_text() + "  - {match: '*', owner: x}\n")
    out = tmp_path / "other"
    code, output = report(quarter_dir, out, "--owners", str(owners))
    assert code == 0, output
    before = orjson.loads((first / "manifest.json").read_bytes())
    after = orjson.loads((out / "manifest.json").read_bytes())
    assert before["parameters_sha256"] != after["parameters_sha256"]
    assert before["store_state"] == after["store_state"]  # same store, same state
    assert orjson.loads((out / "json" / "ownership_gaps.json").read_bytes()) == []


def test_summary_output_and_period_options(quarter_dir: Path, tmp_path: Path) -> None:
    code, output = report(quarter_dir, tmp_path / "a")
    assert code == 0
    assert "3 unused, 5 not rotated, 1 over-broad, 2 without owner, 2 coverage gaps" in output
    assert "manifest" in output and "sha256" in output
    code, output = run(
        "report", "--from", "2026-07-01", "--to", "2026-09-30", "--store",
        str(quarter_dir / "store.duckdb"), "--out", str(tmp_path / "b"), "--owners",
        str(quarter_dir / "owners.yaml"), "--inventory", str(quarter_dir / "inventory.yaml"),
        "--policies", str(quarter_dir / "policies"),
    )  # fmt: skip
    assert code == 0, output
    a = orjson.loads((tmp_path / "a" / "json" / "stale_rotations.json").read_bytes())
    b = orjson.loads((tmp_path / "b" / "json" / "stale_rotations.json").read_bytes())
    assert a == b  # the same days, named two ways


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quarter", "2026Q3", "--from", "2026-07-01"], "either --quarter"),
        (["--from", "2026-07-01"], "either --quarter"),
        (["--quarter", "Q3"], "write it like 2026Q3"),
        (["--from", "2026-07-01", "--to", "2026-06-01"], "is before --from"),
        (["--quarter", "2026Q3", "--policies", "/nonexistent"], "does not exist"),
        (["--quarter", "2026Q3", "--inventory", "/nonexistent.yaml"], "not found"),
        (["--quarter", "2026Q3", "--timezone", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_errors_name_the_fix(quarter_dir: Path, tmp_path: Path, args: list[str], message: str
                             ) -> None:  # fmt: skip
    code, output = run("report", "--store", str(quarter_dir / "store.duckdb"),
                       "--out", str(tmp_path / "x"), *args)  # fmt: skip
    assert code == 2, output
    assert message in " ".join(output.split())


def test_refuses_a_folder_that_is_not_a_report(quarter_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, output = report(quarter_dir, tmp_path)
    assert code == 2 and "holds no earlier report" in " ".join(output.split())
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_inventory_is_named(quarter_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("grants:\n  - {identity: x, source: mainframe, secrets: ['*']}\n")
    code, output = report(quarter_dir, tmp_path / "out", "--inventory", str(bad))
    assert code == 2
    assert "grants.0.source" in output and str(bad) in " ".join(output.split())


def test_pdf_from_the_same_html(quarter_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("weasyprint", exc_type=ImportError)
    out = tmp_path / "pdf"
    code, output = report(quarter_dir, out, "--pdf")
    assert code == 0, output
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    assert "report.pdf" in manifest.listed(out)
    assert manifest.verify(out) == []
    code, output = report(quarter_dir, tmp_path / "again", "--pdf")
    assert code == 0, output
    assert (tmp_path / "again" / "report.pdf").read_bytes() == pdf  # byte-identical too


# -- rotation evidence as the parsers emit it ----------------------------------------------


def test_fixture_logs_give_rotation_evidence_per_source(tmp_path: Path) -> None:
    """The project's real audit-log fixtures, ingested, carry rotation evidence from every
    source that logs it: Vault KV writes and rotate endpoints, Secrets Manager, SSM,
    Google AddSecretVersion, Key Vault SecretSet, Kubernetes secret writes."""
    store_path = tmp_path / "fx.duckdb"
    code, output = run("ingest", str(REPO / "tests" / "fixtures"), "--store", str(store_path))
    assert code == 0, output
    with DuckDBStore(store_path, read_only=True) as store:
        frame = store.events()
    evidence = frame[[
        o == "success" and is_new_value(s, a, op)
        for s, a, op, o in zip(frame["source"], frame["action"], frame["operation"],
                               frame["outcome"], strict=True)
    ]]  # fmt: skip
    found = set(zip(evidence["source"], evidence["operation"], strict=True))
    assert {("vault", "update"), ("aws", "RotateSecret"), ("aws", "PutSecretValue"),
            ("aws", "PutParameter"), ("gcp", "AddSecretVersion"), ("azure", "SecretSet"),
            ("k8s", "create")} <= found  # fmt: skip
    rotated = set(evidence[evidence["source"] == "vault"]["secret"])
    assert {"secret/apps/orders/api-key", "database/rotate-root/orders-db"} <= rotated
    tagged = frame[frame["operation"] == "CancelRotateSecret"]
    assert len(tagged) and not any(
        is_new_value("aws", a, op) for a, op in zip(tagged["action"], tagged["operation"],
                                                    strict=True)
    )  # fmt: skip


@pytest.mark.parametrize("verb", ["update", "patch"])
def test_kubernetes_secret_updates_are_rotation_evidence(verb: str) -> None:
    """An audit.k8s.io/v1 event updating a Secret (as the API server logs it at Metadata
    level) parses to a write that counts as a new value."""
    doc = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "4d2f1f6e-5b1a-4c1e-9a53-7c2d9d1f0a11", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/secrets/db-secret", "verb": verb,
        "user": {"username": "system:serviceaccount:ci:deployer"},
        "sourceIPs": ["10.2.0.7"], "userAgent": "kubectl/v1.30.2",
        "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db-secret",
                      "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-09-05T12:00:00.000000Z",
        "stageTimestamp": "2026-09-05T12:00:00.020000Z",
    }  # fmt: skip
    (row,) = k8s.parse(doc, "prod")
    assert (row.secret, row.action, row.operation, row.outcome) == (
        "shop/db-secret",
        "write",
        verb,
        "success",
    )
    assert is_new_value(row.source, row.action, row.operation)
