"""Behaviour pinned across refactors: the alerts `replay` writes for the harness scenarios
(`tests/bench/eval_detectors.py` seeds 1 and 2, and the demo's scenario), the alerts `detect`
puts in the outbox, and the access review's tables, byte for byte as recorded before the
issue-15 redesign (`tests/fixtures/golden/`).

The scenarios are regenerated from their seeds (the generator writes the same bytes for the
same seed, `tests/bench/test_harness.py` checks that) into a temporary folder deleted after
each test: a full scenario is about 1 GB. A difference prints the first alert or table row
that changed, so a deliberate change can be judged and the recording renewed with
`SECRETWATCH_RECORD_GOLDEN=1`.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
RECORD = os.environ.get("SECRETWATCH_RECORD_GOLDEN") == "1"
WIDE = {"COLUMNS": "200"}

sys.path.insert(0, str(REPO / "tests" / "bench"))
from scenario_gen import generate  # noqa: E402

# name -> (seed, days, scale): eval_detectors.py's defaults for seeds 1 and 2, scripts/demo's.
SCENARIOS = {"seed1": (1, 120, 1.0), "seed2": (2, 120, 1.0), "demo": (1, 120, 0.25)}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder removed as soon as the test ends (pytest's tmp_path keeps three runs)."""
    folder = Path(tempfile.mkdtemp(prefix="sw-golden-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def secretwatch(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def scenario(folder: Path, name: str) -> str:
    """Generate scenario `name` into `folder`; its training cut-off."""
    seed, days, scale = SCENARIOS[name]
    return str(generate(folder, seed, days, scale)["train_until"])


def same_bytes(got: bytes, recorded: Path) -> None:
    """`got` equals the recording, or the assertion shows the first lines that differ."""
    if RECORD:
        recorded.parent.mkdir(parents=True, exist_ok=True)
        recorded.write_bytes(got)
    want = recorded.read_bytes()
    if got == want:
        return
    diff = difflib.unified_diff(
        want.decode().splitlines(),
        got.decode().splitlines(),
        "recorded",
        "now",
        n=0,
        lineterm="",
    )
    shown = "\n".join(line[:600] for line in list(diff)[:12])
    pytest.fail(f"{recorded.relative_to(REPO)} changed:\n{shown}")


@pytest.mark.parametrize("name", SCENARIOS)
def test_replay_writes_the_recorded_alerts(name: str, scratch: Path) -> None:
    cut = scenario(scratch, name)
    alerts = scratch / "alerts.jsonl"
    inputs = ["--input", str(scratch / "vault"), "--input", str(scratch / "aws")]
    secretwatch("replay", *inputs, "--train-until", cut, "--alerts", str(alerts))
    same_bytes(alerts.read_bytes(), GOLDEN / name / "alerts.jsonl")


def test_store_detection_and_access_review_are_the_recorded_ones(scratch: Path) -> None:
    """The demo's store path: ingest, train, detect into the outbox, the quarterly review."""
    cut = scenario(scratch, "demo")
    store = ["--store", str(scratch / "demo.duckdb")]
    secretwatch("ingest", str(scratch / "vault"), str(scratch / "aws"), *store)
    secretwatch("train", "--until", cut, *store)
    secretwatch("detect", *store)
    outbox = secretwatch("alerts", "--json", "--limit", "0", *store)
    assert len(outbox.splitlines()) == len([orjson.loads(x) for x in outbox.splitlines()])
    same_bytes(outbox.encode(), GOLDEN / "demo" / "outbox.jsonl")

    out = scratch / "report"
    examples = REPO / "config" / "examples"
    secretwatch(
        "report",
        "--from",
        "2026-03-01",
        "--to",
        "2026-05-31",
        *store,
        "--out",
        str(out),
        "--inventory",
        str(examples / "inventory.yaml"),
        "--policies",
        str(examples / "vault-policies"),
    )
    recorded = GOLDEN / "demo" / "report"
    tables = sorted(p.name for p in (out / "csv").glob("*.csv"))
    if not RECORD:
        assert tables == sorted(p.name for p in (recorded / "csv").glob("*.csv"))
    for table in tables:
        same_bytes((out / "csv" / table).read_bytes(), recorded / "csv" / table)
    same_bytes((out / "summary.json").read_bytes(), recorded / "summary.json")
