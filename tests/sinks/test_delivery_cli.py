"""`secretwatch deliver` and `secretwatch alerts` (list, resolve, redrive), and a delivery
process killed mid-request and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import receivers
from clitext import flat
from outbox import SECRET, many
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.store.duckdb import DuckDBStore

WIDE = {"COLUMNS": "250", "TEST_WEBHOOK_SECRET": SECRET}
RUN = "from pipeline.cli import app; app()"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=WIDE)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _config(folder: Path, url: str, batch_size: int = 1) -> Path:
    path = folder / "cfg.yaml"
    path.write_text(f"""
store: {{path: {folder / "store.duckdb"}}}
sinks:
  - {{name: file, type: jsonl, path: {folder / "alerts.jsonl"}}}
  - {{name: hook, type: webhook, url: "{url}", secret_env: TEST_WEBHOOK_SECRET,
     batch_size: {batch_size}}}
delivery: {{poll_seconds: 0.02, backoff_base: 50ms, backoff_max: 200ms,
           breaker_cooldown: 300ms, suppression_window: 0}}
""")
    return path


def _alerts(folder: Path, n: int) -> list[dict]:
    with DuckDBStore(folder / "store.duckdb") as store:
        return many(store, n)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_deliver_once_sends_to_every_sink(work: Path, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    cfg = _config(work, rx.url)
    alerts = _alerts(work, 3)
    code, output = invoke("deliver", "--once", "--config", str(cfg))
    assert code == 0, output
    assert "delivered 6, suppressed 0, dead-lettered 0; 0 deliveries still pending" in output
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)
    lines = (work / "alerts.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(a["id"] for a in alerts)
    code, output = invoke("deliver", "--once", "--config", str(cfg))  # nothing new
    assert code == 0 and "delivered 0" in output and len(rx.requests) == 3


def test_alerts_list_resolve_and_redrive(work: Path, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(1, 401, body={"error": "unknown key"})
    cfg = _config(work, rx.url, batch_size=10)
    alerts = _alerts(work, 2)
    code, output = invoke("deliver", "--once", "--config", str(cfg))
    assert code == 1 and "dead-lettered 2" in output

    code, output = invoke("alerts", "--config", str(cfg))
    text = flat(output)
    assert code == 0 and "2 alerts" in text
    assert "hook dead (HTTP 401), file delivered" in text
    assert "re-drive with: secretwatch alerts redrive" in text
    code, output = invoke("alerts", "list", "--state", "dead", "--json", "--config", str(cfg))
    docs = [json.loads(line) for line in output.splitlines()]
    assert sorted(d["id"] for d in docs) == sorted(a["id"] for a in alerts)
    [dead] = docs[0]["deliveries"]  # only the rows in that state
    assert (dead["sink"], dead["state"], dead["last_status"], dead["attempts"]) == (
        "hook",
        "dead",
        401,
        1,
    )
    assert "unknown key" in dead["last_error"]

    code, output = invoke("alerts", "redrive", "--sink", "nope", "--config", str(cfg))
    assert code == 2 and "configured sinks: file, hook" in flat(output)
    code, output = invoke(
        "alerts", "redrive", "--sink", "hook", "--id", alerts[0]["id"], "--config", str(cfg)
    )
    assert code == 0 and "1 dead delivery is pending again" in output
    code, output = invoke("alerts", "redrive", "--config", str(cfg))
    assert code == 0 and "1 dead delivery is pending again" in output
    code, output = invoke("deliver", "--once", "--config", str(cfg))
    assert code == 0 and "delivered 2" in output
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)

    target = alerts[1]["id"]
    code, output = invoke(
        "alerts",
        "resolve",
        target,
        "--false-positive",
        "--note",
        "a planned rotation",
        "--by",
        "ana",
        "--config",
        str(cfg),
    )
    assert code == 0 and "false_positive (by ana)" in output
    with DuckDBStore(work / "store.duckdb", read_only=True) as store:
        row = store.alerts().set_index("id").loc[target]
        assert (row["resolution"], row["note"], row["revision"]) == (
            "false_positive",
            "a planned rotation",
            2,
        )
    code, output = invoke("deliver", "--once", "--config", str(cfg))
    assert code == 0 and rx.received()[-1] == (target, 2)
    code, output = invoke("alerts", "--json", "--config", str(cfg))
    verdicts = {
        json.loads(line)["id"]: json.loads(line)["resolution"] for line in output.splitlines()
    }
    assert verdicts[target] == "false_positive"


def test_alerts_errors(work: Path) -> None:
    cfg = _config(work, "http://127.0.0.1:9")
    _alerts(work, 1)
    code, output = invoke("alerts", "resolve", "swa-nope", "--true-positive", "--config", str(cfg))
    assert code == 2 and "no alert 'swa-nope'" in flat(output)
    code, output = invoke("alerts", "resolve", "swa-nope", "--config", str(cfg))
    assert code == 2 and "exactly one of" in flat(output)
    code, output = invoke("alerts", "--state", "lost", "--config", str(cfg))
    assert code == 2 and "pending, delivered, dead, suppressed" in flat(output)


def test_deliver_names_a_missing_secret(work: Path) -> None:
    cfg = _config(work, "http://127.0.0.1:9")
    result = CliRunner().invoke(
        app,
        ["deliver", "--once", "--config", str(cfg)],
        env={"COLUMNS": "250", "TEST_WEBHOOK_SECRET": ""},
    )
    assert result.exit_code == 2
    assert "TEST_WEBHOOK_SECRET (from secret_env) is not set" in flat(result.output)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", RUN, *args]


def test_killed_mid_delivery_and_restarted_loses_nothing(work: Path, receiver) -> None:
    """kill -9 while the receiver has taken a request but not answered it: the restarted
    process sends every alert not recorded as delivered, under the same keys; a receiver
    that deduplicates by idempotency key sees each alert once. The first round of 4
    requests is answered; the answers to the next are held until after the kill, so it
    lands on requests in flight however slow the machine is."""
    rx = receiver(receivers.webhook(SECRET))
    rx.hold_answers(after=4)
    cfg = _config(work, rx.url)
    alerts = _alerts(work, 10)
    env = {**os.environ, "TEST_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        _cli("deliver", "--config", str(cfg)),
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(rx.received()) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(rx.received()) >= 5, "the delivery process did not start sending"
        proc.send_signal(signal.SIGKILL)  # taken by the receiver, not yet answered
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        rx.release()
    taken_before = rx.received()
    assert len(taken_before) <= 8  # the first round answered, the second held: no third
    restarted = subprocess.run(
        _cli("deliver", "--once", "--config", str(cfg)),
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    got = rx.received()
    assert sorted(set(got)) == sorted((a["id"], 1) for a in alerts)  # nothing lost
    repeats = [key for key, n in Counter(got).items() if n > 1]
    # Only what was in flight at the kill comes twice: at most `concurrency` (4) requests
    # of one alert each, taken by the receiver but never answered.
    assert 1 <= len(repeats) <= 4 and set(repeats) <= set(taken_before[-4:])
    for alert_id, _ in repeats:
        sent = [r for r in rx.requests if r.headers["idempotency-key"] == alert_id]
        assert len(sent) == 2  # the same message: same webhook-id, same idempotency key
        assert len({(r.headers["webhook-id"], r.headers["idempotency-key"]) for r in sent}) == 1
    with DuckDBStore(work / "store.duckdb", read_only=True) as store:
        states = store.delivery_state(["hook", "file"])["state"]
        assert set(states) == {"delivered"}


def test_sigterm_stops_cleanly(work: Path, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    cfg = _config(work, rx.url)
    alerts = _alerts(work, 2)
    env = {**os.environ, "TEST_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        _cli("deliver", "--config", str(cfg)),
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert len(set(rx.wait_for(2, timeout=60))) == 2  # running: SIGTERM is handled
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
    assert "delivered 4" in out
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_deliver_without_sinks_says_how_to_add_one(work: Path) -> None:
    (work / "none.yaml").write_text(f"store: {{path: {work / 's.duckdb'}}}\nsinks: []\n")
    code, output = invoke("deliver", "--once", "--config", str(work / "none.yaml"))
    assert code == 2 and "no sink is configured" in flat(output)
