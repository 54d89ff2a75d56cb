"""The CLI as a real process beside a process that holds the store read-write (this one,
serving the query routes): the read and triage commands go through the API and print byte
for byte what they print on the closed store afterwards; a verdict given through the API is
in the store; a wrong token, a service that is not running and a config without `api:` end
in clear errors with exit status 2."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import yaml
from served_store import REPO, served
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ENV_VAR
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.remote import TOKEN_ENV

TOKEN = "cli-remote-test-token"  # noqa: S105 - a test token
CONFIG_TOKEN_ENV = "SW_TEST_API_TOKEN"  # noqa: S105 - the name of a variable
REPORT_ARGS = ("report", "--from", "2026-03-01", "--to", "2026-03-31")
READS: list[tuple[str, ...]] = [
    ("events",),
    ("events", "--json", "--identity", "shop/*", "--newest", "--limit", "20"),
    ("events", "--action", "read", "--outcome", "success", "--source", "vault",
     "--since", "2026-03-05", "--until", "2026-03-06T06:00:00"),
    ("events", "--json", "--secret", "secret/shop/*", "--limit", "0"),
    ("events", "--outcome", "denied", "--limit", "0"),
    ("stats",),
    ("stats", "--by", "action", "--by", "backend", "--source", "vault", "--limit", "3"),
    ("dead-letters", "--raw", "--limit", "0"),
    ("alerts",),
    ("alerts", "list", "--json", "--limit", "0"),
    ("alerts", "--state", "pending", "--limit", "2"),
]  # fmt: skip


def _command() -> list[str]:
    script = Path(sys.executable).with_name("secretwatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, TOKEN_ENV)}
    return subprocess.run(
        [*_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **env},
        timeout=120,
        check=False,
    )


# One process runs many commands: the CLI's startup (imports) costs seconds on a busy
# machine, and what is tested is the other process holding the store, not the startup.
BATCH = """
import sys, orjson
from typer.testing import CliRunner
from pipeline.cli import app
done = []
for args in orjson.loads(sys.stdin.buffer.read()):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    done.append([args, result.exit_code, result.stdout, result.stderr, repr(result.exception)])
sys.stdout.buffer.write(orjson.dumps(done))
"""


def run_all(cwd: Path, commands: list[tuple[str, ...]], **env: str) -> list[str]:
    """Every command's stdout, in order, run by the CLI in one other process; each must
    succeed."""
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, TOKEN_ENV)}
    batch = subprocess.run(
        [sys.executable, "-c", BATCH],
        input=orjson.dumps(commands),
        capture_output=True,
        cwd=cwd,
        env={**clean, **env},
        timeout=300,
        check=True,
    )
    outputs = []
    for args, code, stdout, stderr, exception in orjson.loads(batch.stdout):
        assert code == 0, (args, stderr, exception)
        assert "error" not in stderr, (args, stderr)
        outputs.append(stdout)
    return outputs


def write_config(path: Path, store: Path, api: dict[str, object] | None) -> Path:
    """config/default.yaml (its sinks, report settings) with this store and `api`."""
    data = yaml.safe_load((REPO / "config" / "default.yaml").read_text())
    data["store"]["path"] = str(store)
    if api is not None:
        data["api"] = api
    path.write_text(yaml.safe_dump(data))
    return path


def report_files(folder: Path) -> dict[str, bytes]:
    """The report's tables and summary (the manifest and page carry the generation time)."""
    files = [*folder.glob("csv/*.csv"), *folder.glob("json/*.json"), folder / "summary.json"]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_reads_through_the_api_print_what_the_closed_store_prints(
    store_path: Path, tmp_path: Path
) -> None:
    token = {CONFIG_TOKEN_ENV: TOKEN}
    with served(store_path, TOKEN) as (url, writer):
        port = url.rsplit(":", 1)[1]
        config = write_config(
            tmp_path / "api.yaml", store_path,
            {"listen": f"127.0.0.1:{port}", "token_env": CONFIG_TOKEN_ENV},
        )  # fmt: skip
        plain = write_config(tmp_path / "plain.yaml", store_path, None)
        alert_id = str(writer.alerts()["id"].iloc[0])
        resolve = ("alerts", "resolve", alert_id, "--false-positive", "--by", "tester")
        verdict = run(tmp_path, *resolve, "--note", "the nightly batch", "-c", str(config), **token)
        assert verdict.returncode == 0, verdict.stderr
        assert f"{alert_id}: false_positive (by tester)" in verdict.stdout
        commands = [(*args, "-c", str(config)) for args in READS]
        commands += [
            ("alerts", "show", alert_id, "-c", str(config)),
            ("alerts", "show", alert_id, "--json", "-c", str(config)),
            (*REPORT_ARGS, "--out", str(tmp_path / "remote"), "-c", str(config)),
        ]
        forced = ("events", "--json", "--limit", "0")
        remote = run_all(
            tmp_path,
            [*commands, (*forced, "--server", url, "-c", str(plain))],
            **token,
            **{TOKEN_ENV: TOKEN},
        )
    local = run_all(
        tmp_path,
        [*commands[:-1], (*REPORT_ARGS, "--out", str(tmp_path / "local"), "-c", str(config)),
         (*forced, "-c", str(plain))],
    )  # fmt: skip
    assert remote[:-2] == local[:-2]  # the report prints its folder: compared as files below
    assert report_files(tmp_path / "remote") == report_files(tmp_path / "local")
    assert len(report_files(tmp_path / "local")) > 5
    assert remote[-1] == local[-1]
    shown = orjson.loads(local[-3])
    assert (shown["resolution"], shown["resolved_by"], shown["note"]) == (
        "false_positive",
        "tester",
        "the nightly batch",
    )
    assert len(remote[-1].splitlines()) > 500
    assert "events" in remote[0]
    assert "dead letters" in remote[7]


def test_a_wrong_token_is_a_clear_error(store_path: Path, tmp_path: Path) -> None:
    with served(store_path, TOKEN) as (url, _):
        port = url.rsplit(":", 1)[1]
        config = write_config(tmp_path / "api.yaml", store_path, {"listen": f"127.0.0.1:{port}"})
        through_config = run(tmp_path, "events", "-c", str(config), **{TOKEN_ENV: "wrong"})
        forced = CliRunner().invoke(app, ["stats", "--server", url, "-c", str(config)])
    assert (through_config.returncode, forced.exit_code) == (2, 2)
    for stderr in (through_config.stderr, forced.stderr):
        text = " ".join(stderr.split())
        assert "refused the API token (HTTP 401)" in text
        assert "$SECRETWATCH_API_TOKEN" in text
        assert "Traceback" not in stderr
        assert TOKEN not in stderr
    assert "in use by another process" in " ".join(through_config.stderr.split())


def test_a_held_store_without_an_api_says_how_to_read_it(store_path: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "plain.yaml", store_path, None)
    with served(store_path, None):
        results = [run(tmp_path, "alerts", "show", "swa-x", "-c", str(config))]
    for result in results:
        assert result.returncode == 2
        text = " ".join(result.stderr.split())
        assert "in use by another process" in text
        assert "run `secretwatch serve` with `api:` in the config" in text
        assert "or pass --server URL" in text
        assert "Traceback" not in result.stderr


def test_an_api_that_does_not_answer_is_named(store_path: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(tmp_path / "api.yaml", store_path, {"listen": f"127.0.0.1:{port}"})
    with DuckDBStore(store_path):  # held read-write here, with no API served
        auto = run(tmp_path, "stats", "-c", str(config))
    assert auto.returncode == 2
    text = " ".join(auto.stderr.split())
    assert "in use by another process" in text
    assert (
        f"and through the API: the secretwatch service at http://127.0.0.1:{port} is not "
        "answering" in text
    )
    assert "Traceback" not in auto.stderr


def test_a_server_that_is_not_a_url(store_path: Path) -> None:
    result = CliRunner().invoke(app, ["events", "--server", "127.0.0.1:8787", "--store",
                                      str(store_path)])  # fmt: skip
    assert result.exit_code == 2
    assert "give the service's API URL, http(s)://host:port" in " ".join(result.output.split())


def test_events_beside_a_running_serve(tmp_path: Path) -> None:
    """`secretwatch serve` follows a Vault log and holds the store; `secretwatch events`
    (config with `api:`) reads it through the service and prints what it prints once the
    service has stopped."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "audit.log"
    shutil.copy(REPO / "tests" / "fixtures" / "vault" / "audit.jsonl", log)
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"type": "duckdb", "path": str(tmp_path / "serve.duckdb")},
        "collectors": [{"type": "file", "paths": [str(log)], "format": "vault"}],
        "spool": {"path": str(tmp_path / "spool")},
        "api": {"listen": f"127.0.0.1:{port}", "token_env": CONFIG_TOKEN_ENV},
        "ingest": {"follow_poll_seconds": 0.2},
        "sinks": [],
    }))  # fmt: skip
    env = {**os.environ, CONFIG_TOKEN_ENV: TOKEN}
    env.pop(TOKEN_ENV, None)
    with open(tmp_path / "serve.log", "wb") as stderr:
        service = subprocess.Popen(
            [*_command(), "serve", "-c", str(config)], cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            url, auth = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {TOKEN}"}
            deadline = time.monotonic() + 90
            while _count(url, auth) != 18:  # the fixture's events, all stored
                assert service.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not store the fixture's events"
                time.sleep(0.2)
            beside = run(
                tmp_path, "events", "--json", "-c", str(config), **{CONFIG_TOKEN_ENV: TOKEN}
            )
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(60)
            finally:
                if service.poll() is None:
                    service.kill()
                    service.wait(10)
    assert beside.returncode == 0, beside.stderr
    after = CliRunner().invoke(app, ["events", "--json", "-c", str(config)], env=env)
    assert after.exit_code == 0, after.output
    assert beside.stdout == after.stdout
    assert len(beside.stdout.splitlines()) == 18


def _count(url: str, auth: dict[str, str]) -> int | None:
    """The stored events through the API, None while it does not answer yet."""
    try:
        answer = httpx.get(url + "/api/events/count", headers=auth, timeout=5)
    except httpx.TransportError:
        return None
    return int(answer.json()["count"]) if answer.status_code == 200 else None
