"""`secretwatch report` from the Elasticsearch store, end to end: the generated quarter
(quarter_world.py) written into a fresh index prefix (`quarter_es`), reported by the real
command in its own process, gives the same report as the DuckDB store (`quarter_report`).

What legitimately differs between the two is only what names the store: the manifest's
`store_state` carries the store's kind and that kind's own schema version (the two stores
number their schemas independently), so its `sha256` differs too, and summary.json and
report.html show that kind and state hash. The aggregates the report read (their hashes),
the event count, every table, the parameters and everything else on the page are equal.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import quarter_world as world
import yaml

from pipeline.config import ENV_VAR
from pipeline.reports import manifest
from pipeline.reports.settings import ReportConfig

ARN = world.ARN
# The store names itself in these two files only (besides the manifest's store_state).
NAMES_THE_STORE = {"summary.json", "report.html"}


def secretwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `secretwatch` command, in a process of its own (a fresh hash seed, so
    a rerun also shows the output does not depend on set or dict order)."""
    command = Path(sys.executable).with_name("secretwatch")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR} | {"COLUMNS": "200"}
    return subprocess.run([str(command), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rows(folder: Path, table: str) -> list[dict]:
    return orjson.loads((folder / "json" / f"{table}.json").read_bytes())


@pytest.fixture(scope="module")
def es_config(quarter_es: tuple[str, str], quarter_config: ReportConfig,
              tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    """A config file: the Elasticsearch store, and exactly the report settings the DuckDB
    report was made with (`quarter_config`, every key written out)."""
    url, prefix = quarter_es
    body = {
        "store": {"type": "elasticsearch", "url": url, "index_prefix": prefix},
        "report": quarter_config.model_dump(mode="json"),
    }
    path = tmp_path_factory.mktemp("es-config") / "secretwatch.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=True))
    return path


@pytest.fixture(scope="module")
def es_report(es_config: Path) -> Path:
    """The 2026Q3 report made from Elasticsearch by `secretwatch report --config`."""
    out = es_config.parent / "2026Q3"
    done = secretwatch("report", "--config", str(es_config), "--quarter", "2026Q3",
                       "--out", str(out), cwd=es_config.parent)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = " ".join(done.stdout.split())
    assert "3 unused, 5 not rotated, 1 over-broad, 2 without owner, 2 coverage gaps" in summary
    return out


def test_every_table_is_the_duckdb_one(es_report: Path, quarter_report: Path) -> None:
    es, duck = digests(es_report), digests(quarter_report)
    assert set(es) == set(duck)
    tables = [name for name in duck if name.startswith(("csv/", "json/"))]
    assert len(tables) == 30  # 15 tables, each as CSV and JSON
    for name in tables:
        assert es[name] == duck[name], f"{name} differs between Elasticsearch and DuckDB"
    assert set(duck) - set(tables) == NAMES_THE_STORE | {"manifest.json"}


def test_summary_differs_only_in_the_store_state(es_report: Path, quarter_report: Path
                                                 ) -> None:  # fmt: skip
    es = orjson.loads((es_report / "summary.json").read_bytes())
    duck = orjson.loads((quarter_report / "summary.json").read_bytes())
    assert es.pop("store_state_sha256") != duck.pop("store_state_sha256")
    assert es == duck  # parameters (so the CLI's config equals the fixture's), counts, notes


def test_manifest_differs_only_where_it_names_the_store(es_report: Path, quarter_report: Path
                                                        ) -> None:  # fmt: skip
    es = orjson.loads((es_report / "manifest.json").read_bytes())
    duck = orjson.loads((quarter_report / "manifest.json").read_bytes())
    es_state, duck_state = es.pop("store_state"), duck.pop("store_state")
    assert (es_state["store"], duck_state["store"]) == ("elasticsearch", "duckdb")
    # What the report read is the same: every aggregate, normalized and hashed, and the
    # number of stored events. Kind, schema version and so the state hash are the store's.
    for key in ("store", "schema_version", "sha256"):
        del es_state[key], duck_state[key]
    assert es_state == duck_state
    assert set(es_state["aggregates_sha256"]) == {
        "access_summary", "alerts", "hourly_activity", "secret_history", "source_coverage"
    }  # fmt: skip
    es_files = {e["path"]: e for e in es.pop("files")}
    duck_files = {e["path"]: e for e in duck.pop("files")}
    assert set(es_files) == set(duck_files)
    assert {p for p in es_files if es_files[p] != duck_files[p]} == NAMES_THE_STORE
    assert es == duck  # format, parameters and their hash


def test_page_differs_only_where_it_names_the_store(es_report: Path, quarter_report: Path
                                                    ) -> None:  # fmt: skip
    """report.html with the store's kind, schema version and state hash blanked out is the
    same page, charts included."""

    def blanked(folder: Path) -> str:
        state = orjson.loads((folder / "manifest.json").read_bytes())["store_state"]
        page = (folder / "report.html").read_text()
        page, full = re.subn(state["sha256"], "STATE", page)
        page, short = re.subn(state["sha256"][:16], "STATE", page)
        page, kind = re.subn(rf"\b{state['store']} store\b", "KIND store", page)
        page, listed = re.subn(
            rf"<dt>store</dt><dd>{state['store']}</dd>\s*"
            rf"<dt>store schema</dt><dd>{state['schema_version']}</dd>",
            "<dt>store</dt><dd>KIND</dd><dt>store schema</dt><dd>SCHEMA</dd>", page,
        )  # fmt: skip
        assert (full, short, kind, listed) == (1, 1, 1, 1), folder  # the page still says so
        return page

    assert blanked(es_report) == blanked(quarter_report)


def test_known_findings(es_report: Path) -> None:
    """The planted findings (quarter_world.py), read from the Elasticsearch report's files."""

    def pairs(table: str, *columns: str) -> set[tuple]:
        return {tuple(row[c] for c in columns) for row in rows(es_report, table)}

    assert pairs("unused_secrets", "source", "secret") == {
        ("vault", "secret/team-c/old-token"), ("aws", ARN + "prod/app/legacy"),
        ("vault", "secret/team-a/never-used"),
    }  # fmt: skip
    assert pairs("stale_rotations", "source", "secret", "status", "last_rotated") == {
        ("vault", "secret/team-b/db", "overdue", "2026-04-10T12:00:00Z"),
        ("aws", ARN + "prod/app/legacy", "overdue", "2026-04-20T12:00:00Z"),
        ("vault", "secret/team-a/api-key", "no evidence", None),
        ("vault", "secret/team-c/old-token", "no evidence", None),
        ("vault", "secret/team-a/never-used", "no evidence", None),
    }
    assert pairs("overbroad_identities", "identity", "granted", "used") == {("svc-b", 4, 1)}
    assert pairs("unused_grants", "identity", "secret") == {
        ("svc-a", "secret/team-a/never-used"), ("svc-b", "secret/team-a/db"),
        ("svc-b", "secret/team-a/api-key"), ("svc-b", "secret/team-a/never-used"),
        (world.ROLE, ARN + "prod/app/legacy"),
    }  # fmt: skip
    assert pairs("ownership_gaps", "source", "secret") == {
        ("vault", "secret/team-c/old-token"), ("azure", "kv1/secrets/az-secret"),
    }  # fmt: skip
    assert pairs("coverage_gaps", "source", "gap_start", "gap_end") == {
        ("vault", "2026-08-09T09:00:00Z", "2026-08-13T09:00:00Z"),
        ("gcp", "2026-09-20T09:00:00Z", "2026-10-01T00:00:00Z"),
    }
    assert [(a["identity"], a["resolution"]) for a in rows(es_report, "alerts")] == [
        ("svc-c", "open"), ("svc-b", "true_positive"), ("svc-b", "false_positive"),
    ]  # fmt: skip


def test_rerun_is_byte_identical(es_report: Path, es_config: Path) -> None:
    again = es_config.parent / "again"
    done = secretwatch("report", "--config", str(es_config), "--quarter", "2026Q3",
                       "--out", str(again), cwd=es_config.parent)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert digests(again) == digests(es_report)


def test_verify_accepts_it_and_catches_tampering(es_report: Path, tmp_path: Path) -> None:
    done = secretwatch("report", "--verify", str(es_report), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every file matches" in done.stdout
    copy = tmp_path / "copy"
    shutil.copytree(es_report, copy)
    target = copy / "json" / "unused_secrets.json"
    target.write_bytes(target.read_bytes().replace(b"team-c", b"team-x"))
    assert manifest.verify(copy) == ["json/unused_secrets.json: SHA-256 differs from the manifest"]
    done = secretwatch("report", "--verify", str(copy), cwd=tmp_path)
    assert done.returncode == 1 and "differs" in done.stderr, done.stdout + done.stderr
