"""`archive verify` catches every kind of tampering, naming the file and day, and a prune
shows as a deliberate, signed deletion rather than a gap."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from archive_helpers import DAY0, fill, setup
from clitext import flat
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from pipeline.archive import chain, keys, layout
from pipeline.archive.prune import prune
from pipeline.archive.run import run_archive
from pipeline.archive.settings import Retention
from pipeline.archive.verify import verify
from pipeline.cli import app
from pipeline.config import load_config
from pipeline.store.duckdb import DuckDBStore

DAYS = [DAY0 + timedelta(days=i) for i in range(4)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An archive of four days (three sources each) and the config that made it."""
    tmp = tmp_path_factory.mktemp("built")
    config, store, folder, _ = setup(tmp)
    fill(store, days=5, per_day=20)
    with DuckDBStore(store) as s:
        run = run_archive(load_config(config).retention, "duckdb", s, DAYS[-1] + timedelta(1))
    assert run.days == 4
    return config, folder


@pytest.fixture
def archive(built: tuple[Path, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    shutil.copytree(built[1], folder)
    return folder


def part(folder: Path, day: date, source: str = "vault") -> Path:
    return layout.event_file(folder, day, source, 0)


def digest(folder: Path, i: int) -> Path:
    return layout.digest_file(folder, DAYS[i], i)


def flip_byte(folder: Path) -> None:
    path = part(folder, DAYS[1])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def swap_digests(folder: Path) -> None:
    a, b = digest(folder, 1), digest(folder, 2)
    text = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(text)


def resign_with_another_key(folder: Path) -> None:
    path = digest(folder, 2)
    record = json.loads(path.read_text())
    other = Ed25519PrivateKey.generate()
    body = {k: v for k, v in record.items() if k != "signature"}
    body["key_fingerprint"] = keys.fingerprint(other.public_key())
    path.write_bytes(chain.encode({**body, "signature": keys.sign(other, body)}))


def edit_digest_rows(folder: Path) -> None:
    path = digest(folder, 2)
    record = json.loads(path.read_text())
    record["files"][0]["rows"] += 1
    path.write_bytes(chain.encode(record))


CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "one byte of a Parquet file": (
        flip_byte,
        [f"changed file events/2024/03/{DAYS[1]}.vault.0.parquet (day {DAYS[1]})"],
    ),
    "a deleted file": (
        lambda f: part(f, DAYS[2], "aws").unlink(),
        [f"missing file events/2024/03/{DAYS[2]}.aws.0.parquet (day {DAYS[2]}"],
    ),
    "a dropped digest": (
        lambda f: digest(f, 1).unlink(),
        [
            "missing digest at chain position 1",
            f"broken link: digest digests/{DAYS[2]}.000002.json (day {DAYS[2]}) links "
            f"digests/{DAYS[1]}.000001.json (day {DAYS[1]}), which is missing",
            f"extra unlisted file events/2024/03/{DAYS[1]}.k8s.0.parquet",
        ],
    ),
    "two days' digests swapped": (
        swap_digests,
        [
            f"digest digests/{DAYS[1]}.000001.json holds day {DAYS[2]}",
            f"digest digests/{DAYS[2]}.000002.json holds day {DAYS[1]}",
        ],
    ),
    "a digest signed with another key": (
        resign_with_another_key,
        [f"wrong key: digest digests/{DAYS[2]}.000002.json (day {DAYS[2]})"],
    ),
    "a digest edited after signing": (
        edit_digest_rows,
        [
            f"bad signature: digest digests/{DAYS[2]}.000002.json (day {DAYS[2]})",
            f"broken link: digest digests/{DAYS[3]}.000003.json",
        ],
    ),
    "an unlisted file": (
        lambda f: part(f, DAYS[0], "gcp").write_bytes(b"PAR1"),
        [f"extra unlisted file events/2024/03/{DAYS[0]}.gcp.0.parquet: no digest lists it"],
    ),
}


def test_an_untouched_archive_verifies_and_says_what_it_checked(archive: Path) -> None:
    done = verify(archive)
    assert done.problems == []
    assert (done.records, len(done.days), done.files, done.rows) == (4, 4, 12, 240)
    assert done.bytes == sum(p.stat().st_size for p in (archive / "events").rglob("*.parquet"))
    assert done.head is not None and done.head.startswith(f"digests/{DAYS[3]}.000003.json")


@pytest.mark.parametrize("case", list(CASES))
def test_verify_names_each_tampering(archive: Path, case: str) -> None:
    tamper, expected = CASES[case]
    assert not verify(archive).problems
    tamper(archive)
    problems = verify(archive).problems
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)


def test_the_whole_archive_checked_against_another_key(archive: Path, tmp_path: Path) -> None:
    public, _ = keys.keygen(tmp_path / "other.key")
    problems = verify(archive, keys.load_public(public)).problems
    assert len([p for p in problems if p.startswith("wrong key")]) == 4


def test_cli_exits_1_and_names_the_problem(built: tuple[Path, Path], archive: Path) -> None:
    config = built[0]
    ok = CliRunner().invoke(
        app, ["archive", "verify", "--archive", str(archive), "-c", str(config)]
    )
    assert ok.exit_code == 0, ok.stderr
    assert "4 records, 4 days, 12 files (240 events" in ok.stdout
    flip_byte(archive)
    bad = CliRunner().invoke(
        app, ["archive", "verify", "--archive", str(archive), "-c", str(config)]
    )
    assert bad.exit_code == 1
    assert f"changed file events/2024/03/{DAYS[1]}.vault.0.parquet" in flat(bad.stderr)
    assert "1 problems" in bad.stdout


def test_from_to_hashes_only_those_days(archive: Path) -> None:
    flip_byte(archive)  # day 1
    assert not verify(archive, first=DAYS[2], last=DAYS[3]).problems
    assert verify(archive, first=DAYS[1], last=DAYS[1]).problems


def test_prune_then_verify_shows_a_deliberate_deletion(
    built: tuple[Path, Path], archive: Path
) -> None:
    key = keys.load_private(
        Retention.model_validate(
            {"archive": {"path": str(archive), "key_file": str(built[0].parent / "archive.key")}}
        ).archive
    )  # type: ignore[arg-type]
    today = DAYS[2].replace(year=DAYS[2].year + 7)  # days 0 and 1 are past seven years
    done = prune(archive, key, 7, today, dry_run=True)
    assert len(done.removed) == 6 and done.record is None
    assert part(archive, DAYS[0]).exists()
    done = prune(archive, key, 7, today)
    assert len(done.removed) == 6 and done.record is not None
    assert not part(archive, DAYS[0]).exists() and part(archive, DAYS[2]).exists()
    checked = verify(archive)
    assert checked.problems == [] and checked.pruned == 6 and checked.files == 6
    record = json.loads(done.record.read_text())
    assert record["kind"] == "prune" and record["seq"] == 4
    assert {e["digest"]["name"] for e in record["removed"]} == {
        f"digests/{DAYS[0]}.000000.json",
        f"digests/{DAYS[1]}.000001.json",
    }
    again = prune(archive, key, 7, today)
    assert again.removed == [] and again.record is None


def test_a_file_removed_without_prune_is_still_missing(
    built: tuple[Path, Path], archive: Path
) -> None:
    part(archive, DAYS[3]).unlink()
    assert any(p.startswith("missing file") for p in verify(archive).problems)


def test_a_file_replaced_by_a_link_is_refused(archive: Path, tmp_path: Path) -> None:
    target = part(archive, DAYS[1])
    copy = tmp_path / "elsewhere.parquet"
    copy.write_bytes(target.read_bytes())  # the same bytes, so only the link is wrong
    target.unlink()
    target.symlink_to(copy)
    problems = verify(archive).problems
    assert any("is a symbolic link: refused" in p and DAYS[1].isoformat() in p for p in problems)


def test_a_digest_listing_a_path_outside_is_refused(
    archive: Path, built: tuple[Path, Path]
) -> None:
    key = keys.load_private_file(built[0].parent / "archive.key")
    outside = {"path": "../secrets.txt", "kind": "events", "sha256": "0" * 64, "rows": 1}
    chain.append(archive, key, "day", DAYS[3], {"files": [outside]})
    assert any("outside the archive: refused" in p for p in verify(archive).problems)


def test_cli_verifies_an_archive_folder_without_a_config(archive: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    done = CliRunner().invoke(
        app, ["archive", "verify", "--archive", str(archive), "-c", str(empty)]
    )
    assert done.exit_code == 0, done.stderr
    assert "archive's own public_key.pem" in flat(done.stderr)
