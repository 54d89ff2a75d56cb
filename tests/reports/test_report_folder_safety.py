"""`secretwatch report` never reaches outside its folder: a manifest.json already in the
--out folder, or one given to --verify, that lists a path outside the folder (`..`, an
absolute path, a symlink leading out) is refused before anything is deleted or read, and
an --out that is a file (or under one) is a clear error, not a traceback."""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ENV_VAR
from pipeline.errors import InputError
from pipeline.reports import manifest
from pipeline.reports.run import prepare_folder

KINDS = ["dotdot", "absolute", "symlinked-folder", "symlinked-file"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400", ENV_VAR: None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def report(quarter_dir: Path, out: Path) -> tuple[int, str]:
    return run(
        "report", "--quarter", "2026Q3", "--store", str(quarter_dir / "store.duckdb"),
        "--out", str(out), "--owners", str(quarter_dir / "owners.yaml"),
        "--inventory", str(quarter_dir / "inventory.yaml"),
        "--policies", str(quarter_dir / "policies"),
    )  # fmt: skip


def hostile(tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    """(out folder, victim file outside it, the manifest entry that reaches the victim).

    The folder also holds a genuine earlier output, `csv/kept.csv`, listed first."""
    out = tmp_path / "out"
    (out / "csv").mkdir(parents=True)
    (out / "csv" / "kept.csv").write_text("a,b\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("not yours")
    if kind == "dotdot":
        entry = "../outside/victim.txt"
    elif kind == "absolute":
        entry = str(victim)
    elif kind == "symlinked-folder":
        (out / "linked").symlink_to(outside, target_is_directory=True)
        entry = "linked/victim.txt"
    else:
        (out / "escape.txt").symlink_to(victim)
        entry = "escape.txt"
    data = victim.read_bytes()
    files = [{"path": "csv/kept.csv", "bytes": 4, "sha256": manifest.sha256(b"a,b\n")},
             {"path": entry, "bytes": len(data), "sha256": manifest.sha256(data)}]  # fmt: skip
    body = {"format": 1, "parameters": {}, "parameters_sha256": manifest.sha256(b"{}"),
            "store_state": {"sha256": manifest.sha256(b"{}")}, "files": files}  # fmt: skip
    (out / manifest.NAME).write_bytes(orjson.dumps(body))
    return out, victim, entry


@pytest.mark.parametrize("kind", KINDS)
def test_report_out_refuses_a_manifest_reaching_outside(
    quarter_dir: Path, tmp_path: Path, kind: str
) -> None:
    out, victim, entry = hostile(tmp_path, kind)
    code, output = report(quarter_dir, out)
    assert code == 2, output
    assert str(out / manifest.NAME) in output and repr(entry) in output
    assert "outside" in output and "choose another" in output  # what is wrong, and the fix
    assert victim.read_text() == "not yours"
    # Nothing at all was deleted: the genuine listed file and the manifest stay.
    assert (out / "csv" / "kept.csv").read_text() == "a,b\n"
    assert (out / manifest.NAME).is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_prepare_folder_checks_every_entry_before_deleting_any(tmp_path: Path, kind: str) -> None:
    out, victim, entry = hostile(tmp_path, kind)
    with pytest.raises(InputError, match="outside"):
        prepare_folder(out)
    assert victim.exists() and (out / "csv" / "kept.csv").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_verify_refuses_a_manifest_reaching_outside_without_reading_it(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, victim, entry = hostile(tmp_path, kind)
    read: list[Path] = []
    real = pathlib.Path.read_bytes

    def spy(self: Path) -> bytes:
        read.append(Path(os.path.realpath(self)))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", spy)
    code, output = run("report", "--verify", str(out))
    assert code != 0, output
    assert repr(entry) in output and "outside" in output
    assert victim.resolve() not in read
    assert all(p.is_relative_to(out.resolve()) for p in read), read


def test_manifest_entries_that_are_not_files_are_refused(tmp_path: Path) -> None:
    """The folder itself, a NUL byte, a non-string path: refused, not a traceback."""
    for entry in (".", "", "csv/\x00x", 7):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        (out / "keep.txt").write_text("x")
        body = {"files": [{"path": entry, "bytes": 0, "sha256": ""}]}
        (out / manifest.NAME).write_bytes(orjson.dumps(body))
        with pytest.raises(InputError, match="manifest"):
            prepare_folder(out)
        assert (out / "keep.txt").exists()


def test_a_manifest_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / manifest.NAME).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        prepare_folder(tmp_path)
    assert (tmp_path / manifest.NAME).exists()


def test_a_genuine_earlier_report_is_still_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "csv").mkdir(parents=True)
    (out / "csv" / "old.csv").write_text("x\n")
    (out / "report.html").write_text("<p>")
    files = [{"path": p, "bytes": 0, "sha256": ""} for p in ("csv/old.csv", "report.html")]
    (out / manifest.NAME).write_bytes(orjson.dumps({"files": files}))
    prepare_folder(out)
    assert list(out.iterdir()) == []


def test_out_that_is_a_file_is_a_clear_error(quarter_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    code, output = report(quarter_dir, target)
    assert code == 2, output
    assert str(target) in output and "is a file" in output and "--out" in output
    assert target.read_text() == "keep me"


def test_out_under_a_file_is_a_clear_error(quarter_dir: Path, tmp_path: Path) -> None:
    parent = tmp_path / "report.txt"
    parent.write_text("keep me")
    code, output = report(quarter_dir, parent / "q3")
    assert code == 2, output
    assert str(parent) in output and "is a file" in output and "--out" in output
    assert parent.read_text() == "keep me"
