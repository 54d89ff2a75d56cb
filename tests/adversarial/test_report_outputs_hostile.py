"""Hostile names through the access review, end to end on the command line: audit records
whose identities, secret paths and backends are markup, formulas, matplotlib math or
control characters are ingested by the real parser, and `secretwatch report` writes an
HTML page where they are inert text, CSVs where no cell can run as a formula, JSON that
keeps them exactly, charts that draw them, and a manifest that verifies."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ENV_VAR
from pipeline.reports import charts

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = [
    SCRIPT,
    IMG,
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tx",
    "\rx",
    " =1+1",
    "＝1+1",
    "$\\nosuchcmd$",
    "[/]",
    "\x1b]0;pwned\x07",
    "\u202eevil",
    "{{ 7*7 }}",
]
START = datetime(2026, 8, 3, 9, tzinfo=UTC)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400", ENV_VAR: None})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def k8s_event(n: int, user: str, name: str, verb: str) -> dict:
    """An audit.k8s.io/v1 event on a Secret (Metadata level) by `user`."""
    when = (START + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": f"00000000-0000-4000-8000-{n:012d}", "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/shop/secrets/s{n}", "verb": verb,
        "user": {"username": user}, "sourceIPs": ["10.2.0.7"], "userAgent": name,
        "objectRef": {"resource": "secrets", "namespace": "shop", "name": name,
                      "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 403 if verb == "list" else 200},
        "requestReceivedTimestamp": when, "stageTimestamp": when,
    }  # fmt: skip


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-report")
    lines = [
        orjson.dumps(k8s_event(n, user, f"db-{i}-{name}", verb))
        for n, (i, user, name, verb) in enumerate(
            (i, user, name, verb)
            for i, user in enumerate(HOSTILE)
            for name in (HOSTILE[(i + 1) % len(HOSTILE)],)
            for verb in ("get", "update", "list")
        )
    ]
    (folder / "audit.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    store = folder / "store.duckdb"
    code, output = run("ingest", str(folder / "audit.jsonl"), "--format", "k8s",
                       "--store", str(store))  # fmt: skip
    assert code == 0, output
    owners = [{"match": "shop/*", "owner": SCRIPT, "contact": "=cmd"}]
    inventory = {
        "secrets": [{"secret": f"shop/{name}", "source": "k8s", "owner": name}
                    for name in HOSTILE],
        "grants": [{"identity": user, "source": "k8s", "secrets": ["shop/*"], "note": user}
                   for user in HOSTILE],
    }  # fmt: skip
    (folder / "owners.yaml").write_text(yaml.safe_dump({"owners": owners}))
    (folder / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    out = folder / "report"
    code, output = run("report", "--quarter", "2026Q3", "--store", str(store), "--out",
                       str(out), "--owners", str(folder / "owners.yaml"),
                       "--inventory", str(folder / "inventory.yaml"))  # fmt: skip
    assert code == 0, output
    return out


def test_html_shows_hostile_names_as_text(hostile_report: Path) -> None:
    page = (hostile_report / "report.html").read_text()
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "onerror=alert(1)&gt;" in page
    assert "{{ 7*7 }}" in page  # shown, not evaluated


def test_every_csv_cell_is_inert(hostile_report: Path) -> None:
    neutralised = 0
    for path in sorted((hostile_report / "csv").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    assert cell[:1] not in tuple("=+-@\t\r"), (path.name, cell)
                    assert cell.lstrip()[:1] not in tuple("=+-@＝＋－＠"), (path.name, cell)
                    neutralised += cell.startswith("'")
    assert neutralised >= 20


def test_json_keeps_hostile_names_exactly(hostile_report: Path) -> None:
    identities = orjson.loads((hostile_report / "json" / "identities.json").read_bytes())
    assert set(HOSTILE) <= {row["identity"] for row in identities}
    grants = orjson.loads((hostile_report / "json" / "grants.json").read_bytes())
    assert set(HOSTILE) <= {row.get("note") for row in grants} | {
        row.get("identity") for row in grants
    }


def test_notes_naming_hostile_policies_print_as_text(hostile_report: Path, tmp_path: Path
                                                     ) -> None:  # fmt: skip
    """An inventory naming policies that do not exist gets a note listing them; names
    that are Rich markup or escape sequences print as inert text."""
    inventory = tmp_path / "inventory.yaml"
    names = ["[/]", "[link=http://evil]x[/link]", "\x1b[2J"]
    inventory.write_text(yaml.safe_dump({"identities": [{"identity": "x", "policies": names}]}))
    code, output = run("report", "--quarter", "2026Q3", "--store",
                       str(hostile_report.parent / "store.duckdb"), "--out",
                       str(tmp_path / "out"), "--inventory", str(inventory),
                       "--owners", str(hostile_report.parent / "owners.yaml"))  # fmt: skip
    assert code == 0, output
    assert "\\x1b[2J, [/], [link=http://evil]x[/link]." in output  # sorted, shown as is
    assert "\x1b" not in output


def test_the_hostile_report_verifies(hostile_report: Path) -> None:
    code, output = run("report", "--verify", str(hostile_report))
    assert code == 0, output
    assert "\x1b" not in output


def test_chart_labels_are_drawn_as_text_not_math_or_controls() -> None:
    """matplotlib reads `$...$` as math (an unknown command raised) and warns on a tab;
    chart labels from audit logs are drawn as plain, visible text."""
    summary = pd.DataFrame({"identity": ["$\\nosuchcmd$", "\tx", "a\x1bb"], "used": [1, 2, 3],
                            "unused": [4, 5, 6], "overbroad": [True, False, True]})  # fmt: skip
    assert charts.grants(summary).startswith("data:image/svg+xml;base64,")
    days = pd.DataFrame({"source": ["k8s"], "backend": ["$\\nosuchcmd$\r"],
                         "day": [pd.Timestamp("2026-08-03", tz="UTC")], "events": [3]})  # fmt: skip
    gaps = pd.DataFrame({"gap_start": [], "gap_end": []})
    since, until = datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)
    assert charts.coverage(days, gaps, since, until, "UTC").startswith("data:image/svg")
