"""An access review of an archived quarter: the generated quarter reported from the hot
store, archived with `secretwatch archive` (a key made by `archive keygen`), reported
again from the archive through the CLI: every table and file byte for byte the same; the
manifest lists the archive digests of the quarter's days, and `report --verify`
re-verifies them, naming a changed archive file or digest."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.archive import chain, layout
from pipeline.cli import app
from pipeline.store.duckdb import DuckDBStore

QUARTER = "2026Q3"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def make_world(tmp_path: Path, quarter_dir: Path) -> tuple[Path, Path]:
    """(config, archive): a copy of the generated quarter's store, its evidence files, an
    archive with a key made by `archive keygen`."""
    store = tmp_path / "store.duckdb"
    shutil.copy(quarter_dir / "store.duckdb", store)
    code, out = cli("archive", "keygen", "--out", str(tmp_path / "archive.key"))
    assert code == 0, out
    archive = tmp_path / "archive"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"path": str(store)},
                "report": {
                    "owners": str(quarter_dir / "owners.yaml"),
                    "inventory": str(quarter_dir / "inventory.yaml"),
                    "policies_dir": str(quarter_dir / "policies"),
                },
                "retention": {
                    "hot_days": 400,
                    "archive": {"path": str(archive), "key_file": str(tmp_path / "archive.key")},
                },
            }
        )
    )
    return config, archive


def report(config: Path, out: Path) -> dict[str, object]:
    code, text = cli("report", "--quarter", QUARTER, "--config", str(config), "--out", str(out))
    assert code == 0, text
    body = orjson.loads((out / "manifest.json").read_bytes())
    assert isinstance(body, dict)
    return body


def hot_events(config: Path) -> int:
    path = yaml.safe_load(config.read_text())["store"]["path"]
    with DuckDBStore(path, read_only=True) as store:
        row = store.con.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def reports(
    tmp_path_factory: pytest.TempPathFactory, quarter_dir: Path
) -> tuple[Path, Path, dict[str, object], dict[str, object]]:
    """(config, archive, hot manifest, archived manifest): the quarter reported into
    `hot/`, everything before the quarter's end archived, then reported into `cold/`."""
    tmp = tmp_path_factory.mktemp("archived-report")
    config, archive = make_world(tmp, quarter_dir)
    hot = report(config, tmp / "hot")
    code, text = cli("archive", "--before", "2026-10-01", "--config", str(config))
    assert code == 0, text
    assert hot_events(config) == 0  # the whole history, the quarter included, is archived
    return config, archive, hot, report(config, tmp / "cold")


def test_archived_quarter_reports_the_same_tables(
    reports: tuple[Path, Path, dict[str, object], dict[str, object]],
) -> None:
    config, archive, hot, cold = reports
    tmp = config.parent
    assert "archive" not in hot  # nothing was archived yet: the hot store alone
    assert cold["files"] == hot["files"]  # every output file: path, size, SHA-256
    assert cold["store_state"] == hot["store_state"]
    assert cold["parameters"] == hot["parameters"]
    for entry in hot["files"]:  # type: ignore[attr-defined]
        rel = entry["path"]
        assert (tmp / "cold" / rel).read_bytes() == (tmp / "hot" / rel).read_bytes()

    # The manifest lists every day digest of the quarter's days, by name and hash.
    section = cold["archive"]
    assert isinstance(section, dict)
    assert (section["first_day"], section["last_day"]) == ("2026-07-01", "2026-09-30")
    expected = [
        path.name
        for path, record in chain.records(archive)
        if record["kind"] == "day" and "2026-07-01" <= record["day"] <= "2026-09-30"
    ]
    assert len(expected) >= 80  # the quarter's days with events (the world has gaps)
    assert [d["name"] for d in section["digests"]] == expected


def test_report_verify_rechecks_the_archive(
    reports: tuple[Path, Path, dict[str, object], dict[str, object]], tmp_path: Path
) -> None:
    config, archive, _, _ = reports
    folder = config.parent / "cold"
    code, text = cli("report", "--verify", str(folder), "--config", str(config))
    assert code == 0, text
    # Without the config naming the archive, the digests cannot be checked: said, exit 1.
    code, text = cli("report", "--verify", str(folder), "--config", str(tmp_path / "none.yaml"))
    assert code != 0
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump({"store": {"path": str(tmp_path / "store.duckdb")}}))
    code, text = cli("report", "--verify", str(folder), "--config", str(bare))
    assert code == 1 and "retention.archive.path" in text

    # One byte of an archived file of the quarter changed: named.
    changed = layout.event_file(archive, date(2026, 8, 3), "vault", 0)
    original = changed.read_bytes()
    changed.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    code, text = cli("report", "--verify", str(folder), "--config", str(config))
    assert code == 1
    assert "events/2026/08/2026-08-03.vault.0.parquet" in text.replace("\n", "")
    changed.write_bytes(original)

    # A digest of the quarter rewritten: named, and its signature broken.
    name = orjson.loads((folder / "manifest.json").read_bytes())["archive"]["digests"][5]["name"]
    digest = archive / layout.DIGESTS / name
    kept = digest.read_bytes()
    digest.write_bytes(kept.replace(b'"rows": ', b'"rows": 1', 1))
    code, text = cli("report", "--verify", str(folder), "--config", str(config))
    flat = text.replace("\n", "")
    assert code == 1 and f"digests/{name}: SHA-256 differs" in flat and "bad signature" in flat
    digest.write_bytes(kept)

    # A manifest naming a digest outside the archive's digests folder: refused, not read.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    body = orjson.loads((copy / "manifest.json").read_bytes())
    body["archive"]["digests"][0]["name"] = "../../outside.json"
    (copy / "manifest.json").write_bytes(orjson.dumps(body))
    code, text = cli("report", "--verify", str(copy), "--config", str(config))
    assert code == 1 and "not a digest name: refused" in text.replace("\n", "")


def test_elasticsearch_store_warns_it_reads_hot_only(
    reports: tuple[Path, Path, dict[str, object], dict[str, object]],
    quarter_es: tuple[str, str],
    quarter_dir: Path,
) -> None:
    """The Elasticsearch store reads its hot indices only: a report of a period with
    archived days says so, and its manifest claims no archive digests."""
    config, _, _, _ = reports
    url, prefix = quarter_es
    body = yaml.safe_load(config.read_text())
    body["store"] = {"type": "elasticsearch", "url": url, "index_prefix": prefix}
    es_config = config.parent / "es.yaml"
    es_config.write_text(yaml.safe_dump(body))
    out = config.parent / "es"
    code, text = cli("report", "--quarter", QUARTER, "--config", str(es_config), "--out", str(out))
    assert code == 0, text
    flat = " ".join(text.split())
    assert "days of the period (2026-07-01 to 2026-09-30) are archived" in flat
    assert "archive" not in orjson.loads((out / "manifest.json").read_bytes())
