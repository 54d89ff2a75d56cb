"""Hostile names in audit logs reach the terminal as inert text: no Rich markup error, no
styling or hyperlink from markup, no escape sequence or control character (clear screen,
window title, OSC 8 link, OSC 52 clipboard, carriage return, C1 CSI, bidi override).

Every value an attacker can put in an audit record (identity, secret path, user agent, error
text, a file name in a log folder, dead-letter bytes) is stored through the real parsers and
printed by every command that shows it, on a plain pipe and on a colour terminal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from detectors.alert import Finding, Incident
from pipeline import cli
from pipeline.cli import app, print_alerts
from pipeline.store.base import DeliveryOutcome
from pipeline.store.duckdb import DuckDBStore

# Raw value -> how it must look on the terminal.
HOSTILE = {
    "[/]": "[/]",
    "[bold red]x[/]": "[bold red]x[/]",
    "[link=http://evil]x[/link]": "[link=http://evil]x[/link]",
    "\x1b[2J": "\\x1b[2J",
    "\x1b]0;title\x07": "\\x1b]0;title\\x07",
    "\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\": "\\x1b]8;;http://evil\\x1b\\x\\x1b]8;;\\x1b\\",
    "\x1b]52;c;aGk=\x07": "\\x1b]52;c;aGk=\\x07",
    "\x9b31m": "\\x9b31m",
    "\u202e": "\\u202e",
    "\r": "\\r",
    "\x08": "\\x08",
}
NAMES = [(f"svc{i}-{raw}-end", f"svc{i}-{shown}-end") for i, (raw, shown) in
         enumerate(HOSTILE.items())]  # fmt: skip
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
START = datetime(2026, 5, 1, 3, tzinfo=UTC)
# A plain pipe, and a wide colour terminal (rich tables with styles, as people see them).
TERMINALS = {
    "pipe": {"COLUMNS": "400"},
    "colour": {"COLUMNS": "400", "FORCE_COLOR": "1", "TERM": "xterm-256color"},
}


def colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles as on a colour terminal: styles, hyperlinks and all (they choose
    their colours when made, so FORCE_COLOR alone comes too late for them)."""
    for name, stderr in (("out", False), ("err", True)):
        console = Console(emoji=False, stderr=stderr, force_terminal=True, color_system="256")
        monkeypatch.setattr(cli.consoles, name, console)


def vault_call(i: int, identity: str, secret: str, agent: str, error: str | None) -> bytes:
    """A Vault request/response pair by an AppRole identity named `identity`."""
    token = f"hmac-sha256:{i:064x}"
    auth = {
        "client_token": token,
        "accessor": token,
        "display_name": "approle",
        "policies": ["default"],
        "metadata": {"role": identity},
        "token_type": "service",
    }
    request = {"id": f"00000000-0000-4000-8000-{i:012d}", "operation": "read",
               "mount_type": "kv", "mount_point": "secret/", "client_token": token,
               "namespace": {"id": "root"}, "path": f"secret/data/{secret}",
               "remote_address": "10.0.0.7", "headers": {"user-agent": [agent]}}  # fmt: skip
    stamp = (START + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    lines = []
    for kind in ("request", "response"):
        entry = {"time": stamp, "type": kind, "auth": auth, "request": request}
        if kind == "response":
            entry["response"] = {"mount_type": "kv"}
        if error is not None:
            entry["error"] = error
        lines.append(orjson.dumps(entry))
    return b"\n".join(lines) + b"\n"


def hostile_alert(i: int, identity: str) -> dict:
    start = int((START + timedelta(hours=i)).timestamp()) * 1_000_000
    incident = Incident(identity, baseline_version=1)
    incident.add(
        Finding(
            "new_source",
            identity,
            start,
            start + 3_600_000_000,
            start,
            2.0,
            1.0,
            "high",
            f"{identity} read {identity} from a new address.",
            ("e1",),
        )
    )
    return incident.alert().model_dump(mode="json")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding hostile events, dead letters, alerts and delivery errors."""
    work = tmp_path_factory.mktemp("hostile")
    logs = work / "logs"
    logs.mkdir()
    calls = [vault_call(i, name, f"app/{name}", name, None if i % 2 else f"denied {name}")
             for i, (name, _) in enumerate(NAMES)]  # fmt: skip
    (logs / "vault.log").write_bytes(b"".join(calls))
    junk = b"".join(f"not a log: {name}\n".encode() for name, _ in NAMES)
    (logs / "junk[bold red]\x1b[2J\u202e.log").write_bytes(junk)  # a hostile file name, too
    (work / "cfg.yaml").write_text(
        f"sinks:\n  - {{name: alerts-file, type: jsonl, path: {work / 'alerts.jsonl'}}}\n"
    )
    store = work / "s.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(logs), "--store", str(store), "--config",
                                      str(work / "cfg.yaml")], env=TERMINALS["pipe"])  # fmt: skip
    # Whatever ingest printed is checked in its own test; here the store must be complete.
    with DuckDBStore(store) as opened:
        assert opened.count() == len(NAMES), result.output
        alerts = [hostile_alert(i, name) for i, (name, _) in enumerate(NAMES)]
        opened.save_detection([], {}, alerts, version=1)
        now = datetime.now(UTC)
        opened.record_delivery("alerts-file", [
            DeliveryOutcome(a["id"], 1, "dead", attempts=3, status=400,
                            error=f"HTTP 400: {a['identity']}", first_failed_at=now)
            for a in alerts
        ], now)  # fmt: skip
    return work


def invoke(folder: Path, terminal: str, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        [*args, "--store", str(folder / "s.duckdb"), "--config", str(folder / "cfg.yaml")],
        env=TERMINALS[terminal],
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return result.output


def sgr_free(text: str) -> str:
    """Output less the SGR (colour, bold) sequences rich writes for our own styles; any
    other escape sequence left in it came from data."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def assert_inert(output: str, expect: list[str]) -> None:
    text = sgr_free(output)
    found = FORBIDDEN.findall(text)
    assert not found, f"control characters reached the terminal: {found!r}"
    assert "\u202e" not in text and "\x9b" not in text
    flat = text.replace("\n", "")  # a long cell may fold; the name must still be whole
    for shown in expect:
        assert shown in text or shown in flat or shown in _unfolded(text), (
            f"{shown!r} not shown literally in:\n{text}"
        )


def _unfolded(text: str) -> str:
    """Table cells folded over lines, joined back (rich's box characters and padding off)."""
    return "".join(re.sub(r"[│┃]", "", line).strip() for line in text.splitlines())


@pytest.fixture(params=list(TERMINALS))
def terminal(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "colour":
        colour_terminal(monkeypatch)
    return request.param


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config/default.yaml of the repository


def test_ingest_summary_is_inert(folder: Path, tmp_path: Path, terminal: str) -> None:
    output = CliRunner().invoke(
        app, ["ingest", str(folder / "logs"), "--store", str(tmp_path / "fresh.duckdb"),
              "--config", str(folder / "cfg.yaml")],
        env=TERMINALS[terminal],
    )  # fmt: skip
    assert output.exit_code == 0, output.output
    assert_inert(output.output, ["junk[bold red]\\x1b[2J\\u202e.log"])


def test_events_table_is_inert(folder: Path, terminal: str) -> None:
    output = invoke(folder, terminal, "events", "--limit", "0")
    assert_inert(output, [shown for _, shown in NAMES])
    assert f"{len(NAMES)} events" in output


def test_events_json_is_json_and_inert(folder: Path) -> None:
    output = invoke(folder, "pipe", "events", "--json", "--limit", "0")
    assert not FORBIDDEN.search(output)
    events = [orjson.loads(line) for line in output.splitlines()]
    assert sorted(e["identity"] for e in events) == sorted(name for name, _ in NAMES)
    assert {e["user_agent"] for e in events} == {name for name, _ in NAMES}


@pytest.mark.parametrize("by", ["identity", "secret"])
def test_stats_is_inert(folder: Path, terminal: str, by: str) -> None:
    output = invoke(folder, terminal, "stats", "--by", by, "--limit", "50")
    assert_inert(output, [shown for _, shown in NAMES])


def test_stats_default_tables_are_inert(folder: Path, terminal: str) -> None:
    output = invoke(folder, terminal, "stats", "--limit", "50")
    assert_inert(output, [shown for _, shown in NAMES])


def test_dead_letters_raw_is_inert(folder: Path, terminal: str) -> None:
    output = invoke(folder, terminal, "dead-letters", "--raw", "--limit", "0")
    assert_inert(output, ["junk[bold red]\\x1b[2J\\u202e.log"] + [shown for _, shown in NAMES])


def test_alerts_list_is_inert(folder: Path, terminal: str) -> None:
    output = invoke(folder, terminal, "alerts", "--limit", "0")
    # the table shows identities; the newest dead deliveries show the receiver's answer
    assert_inert(output, [shown for _, shown in NAMES] + [f"HTTP 400: {NAMES[-1][1]}"])


def test_alerts_json_is_json_and_inert(folder: Path) -> None:
    output = invoke(folder, "pipe", "alerts", "--json", "--limit", "0")
    assert not FORBIDDEN.search(output)
    alerts = [orjson.loads(line) for line in output.splitlines()]
    assert sorted(a["identity"] for a in alerts) == sorted(name for name, _ in NAMES)


@pytest.mark.parametrize("force", [False, True])
def test_print_alerts_is_inert(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], force: bool
) -> None:
    from detectors.alert import Alert

    monkeypatch.setenv("COLUMNS", "400")
    if force:
        colour_terminal(monkeypatch)
    print_alerts([Alert.model_validate(hostile_alert(i, name)) for i, (name, _) in
                  enumerate(NAMES)], limit=100)  # fmt: skip
    output = capsys.readouterr().out
    assert_inert(output, [shown for _, shown in NAMES])
    assert f"{NAMES[3][1]} read {NAMES[3][1]} from a new address." in sgr_free(output)


# -- log lines: sink errors quote the receiver's answer ------------------------------------

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's example
ANSWER = "no such identity \x1b]0;pwned\x07\x1b[2J\u202e[bold red]x[/] \x9b31m"
ANSWER_SHOWN = "no such identity \\x1b]0;pwned\\x07\\x1b[2J\\u202e[bold red]x[/] \\x9b31m"


@pytest.fixture
def refusing_receiver() -> Iterator[str]:
    """A webhook receiver on 127.0.0.1 that refuses everything with a hostile answer."""

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = ANSWER.encode()
            self.send_response(400)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_deliver_logs_a_hostile_answer_inert(
    folder: Path, tmp_path: Path, refusing_receiver: str
) -> None:
    shutil.copy(folder / "s.duckdb", tmp_path / "s.duckdb")
    cfg = tmp_path / "hook.yaml"
    cfg.write_text(
        f"store: {{path: {tmp_path / 's.duckdb'}}}\n"
        f'sinks:\n  - {{name: hook, type: webhook, url: "{refusing_receiver}", '
        "secret_env: TEST_WEBHOOK_SECRET}\n"
    )
    env = {**os.environ, "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET, "COLUMNS": "400"}
    done = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli import app; app()", "deliver", "--once",
         "--wait", "5", "--config", str(cfg)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # dead letters
    assert "HTTP 400" in done.stderr
    assert ANSWER_SHOWN in done.stderr
    assert_inert(done.stdout + done.stderr, [])


def test_follow_notes_are_inert() -> None:
    import io

    from pipeline.bus.follow import _say

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="256", width=400)
    _say(console, "logs/[/]\x1b[2J\u202e.log was rotated while stopped")
    assert_inert(buffer.getvalue(), ["logs/[/]\\x1b[2J\\u202e.log was rotated while stopped"])


def test_run_logs_through_the_inert_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from pipeline.run import configure_logging
    from pipeline.terminal import InertFormatter

    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    configure_logging()
    [handler] = logging.root.handlers
    assert isinstance(handler.formatter, InertFormatter)
