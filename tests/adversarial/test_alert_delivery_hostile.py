"""From a hostile audit log to the SIEM: canaries and markup never reach an alert, a sink,
the alerts listing or a log line, and nothing crashes on the way (issue 14, the adversarial
suite's alert and sink paths).

The log is a real-looking Vault history in which the root token reads a secret whose path
carries markup, escape sequences and a spreadsheet formula, while the request and response
carry canary credentials where Vault deployments leak them: unhashed `x-vault-token` and
`authorization` headers, an unhashed accessor, a response value left in clear (audit
`log_raw`), and an error quoting a value. It is ingested, trained on, judged, and delivered
through the real CLI to a JSON-lines file and a real webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import logging
import random
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from test_cli import (
    CUT_OFF,
    HISTORY_START,
    ROOT_AUTH,
    SERVICE,
    invoke,
    vault_call,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sinks"))
import receivers  # noqa: E402 - the sinks tests' real HTTP receivers

from pipeline.store.duckdb import DuckDBStore  # noqa: E402

SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
CANARIES = {
    "header token": "hvs.CANARYhdr0000000000000000000",
    "bearer": "CANARYbearer1111",
    "accessor": "CANARYaccessor2222",
    "clear value": "CANARYvalue3333",
    "error value": "CANARYerror4444",
}
HOSTILE_PATH = 'secret/data/payments/=HYPERLINK("http://evil")\x1b[2J\x1b]0;pwn\x07[/][link=x]y'
ESCAPES = ("\x1b", "\x07", "\x9b")


def _hostile_root_call(rng: random.Random) -> bytes:
    """The root read after the cut-off, with every canary where deployments leak them."""
    line_req, line_resp = vault_call(
        rng,
        CUT_OFF + timedelta(hours=3),
        ROOT_AUTH,
        HOSTILE_PATH,
        "203.0.113.9",
        "7007aaaa-0000-4000-8000-00000000beef",
    ).splitlines()
    out = []
    for raw in (line_req, line_resp):
        doc = orjson.loads(raw)
        doc["request"]["headers"] = {
            "user-agent": ["curl/8.0 \x1b[31mred"],
            "x-vault-token": [CANARIES["header token"]],
            "authorization": ["Bearer " + CANARIES["bearer"]],
        }
        doc["auth"]["accessor"] = CANARIES["accessor"]
        if doc["type"] == "response":
            doc["response"]["data"] = {"data": {"password": CANARIES["clear value"]}}
            doc["error"] = f"1 error occurred: value '{CANARIES['error value']}' is not allowed"
        out.append(orjson.dumps(doc))
    return b"\n".join(out) + b"\n"


@pytest.fixture
def hostile_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(5)
    lines = []
    for hour in range(22 * 24):
        at = HISTORY_START + timedelta(hours=hour)
        lines.append(
            vault_call(
                rng,
                at,
                SERVICE,
                "secret/data/shop/orders/db",
                "10.244.1.7",
                str(uuid.UUID(int=rng.getrandbits(128))),
            )
        )
    lines.append(_hostile_root_call(rng))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "vault.log").write_bytes(b"".join(lines))
    return tmp_path


def _config(folder: Path, url: str) -> Path:
    cfg = folder / "cfg.yaml"
    cfg.write_text(f"""
store: {{path: {folder / "s.duckdb"}}}
sinks:
  - {{name: file, type: jsonl, path: {folder / "alerts.jsonl"}}}
  - {{name: hook, type: webhook, url: "{url}", secret_env: TEST_WEBHOOK_SECRET}}
delivery: {{poll_seconds: 0.02, backoff_base: 50ms, backoff_max: 200ms}}
""")
    return cfg


def _leaks(blob: bytes | str) -> list[str]:
    data = blob.encode() if isinstance(blob, str) else blob
    return [name for name, value in CANARIES.items() if value.encode() in data]


def test_alerts_and_sinks_carry_no_canary_and_no_escape(
    hostile_log: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    rx = receivers.Receiver(receivers.webhook(SECRET))
    try:
        cfg = str(_config(hostile_log, rx.url))
        outputs = []
        with caplog.at_level(logging.DEBUG):
            for args in (
                ("ingest", "logs"),
                ("train", "--until", CUT_OFF.isoformat()),
                ("detect",),
                ("deliver", "--once", "--wait", "30"),
                ("alerts",),
                ("alerts", "--json"),
                ("events", "--json", "--limit", "5"),
                ("events", "--limit", "5"),
                ("dead-letters", "--raw"),
            ):
                code, output = invoke(*args, "--config", cfg)
                assert code == 0, (args, output)
                outputs.append(output)
        bodies = [request.body for request in rx.requests]
    finally:
        rx.close()
    assert bodies, "the webhook received nothing"
    assert "1 alert raised" in outputs[2]
    alert_file = (hostile_log / "alerts.jsonl").read_bytes()
    [alert] = [orjson.loads(line) for line in alert_file.splitlines()]
    assert alert["identity"] == "root" and "root_token" in alert["detector"]
    # The hostile path is data: in the alert as written, never as styling or escapes.
    assert "payments/=HYPERLINK" in alert["explanation"]
    for name, blob in [
        ("alerts.jsonl", alert_file),
        *[(f"webhook body {i}", body) for i, body in enumerate(bodies)],
        *[(f"output {i}", out) for i, out in enumerate(outputs)],
        ("logs", "\n".join(r.getMessage() for r in caplog.records)),
    ]:
        assert not _leaks(blob), f"{name} leaks {_leaks(blob)}"
    for i, out in enumerate(outputs):
        assert not any(c in out for c in ESCAPES), f"output {i} carries a raw escape"
    with DuckDBStore(hostile_log / "s.duckdb", read_only=True) as store:
        tables = [row[0] for row in store.con.execute("SHOW TABLES").fetchall()]
        for table in tables:
            dump = store.con.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608
            assert not _leaks(repr(dump)), f"table {table} leaks {_leaks(repr(dump))}"
