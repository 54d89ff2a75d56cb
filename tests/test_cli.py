"""The `secretwatch` command line: output, filters, and clear errors with exit status 2."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from clitext import flat
from starlette.applications import Starlette
from typer.testing import CliRunner

from pipeline.api.queries import query_routes
from pipeline.cli import app
from pipeline.collectors.http import HttpServer
from pipeline.config import ENV_VAR
from pipeline.record import FIELDS
from pipeline.store.base import Store
from pipeline.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
VAULT = REPO / "tests" / "fixtures" / "vault"
JSONL = VAULT / "audit.jsonl"  # 35 records, 18 events
PRETTY = VAULT / "audit_pretty.json"  # 6 records, 3 events
GARBAGE = b"hello world\nthis is not an audit log\n"
WIDE = {"COLUMNS": "250"}
JSON_KEYS = ["event_id", "timestamp"] + [f for f in FIELDS if f not in ("event_id", "ts_us")]

HOLDER = textwrap.dedent(
    """
    import sys, threading, os
    from pipeline.store.duckdb import DuckDBStore
    store = DuckDBStore(sys.argv[1])
    store.open()
    print("ready", flush=True)
    threading.Timer(600, os._exit, [3]).start()  # a stuck test; EOF ends it when we die
    sys.stdin.readline()
    store.close()
    os._exit(0)
    """
)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty folder: nothing is written into the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(JSONL, logs / "audit.log")
    shutil.copy(PRETTY, logs / "pretty.json")
    (tmp_path / "cfg.yaml").write_text("ingest:\n  batch_size: 5\nbackends:\n  vault: lab\n")
    return tmp_path


def number(output: str, label: str) -> int:
    """The count on the summary line that starts with `label` (labels may grow suffixes)."""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(label) and (len(text) == len(label) or not text[len(label)].isalnum()):
            return int(re.findall(r"\d[\d,]*", text[len(label) :])[-1].replace(",", ""))
    raise AssertionError(f"no summary line {label!r} in:\n{output}")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=WIDE)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def ingested(work: Path) -> Path:
    code, _ = invoke("ingest", "logs", "--store", "s.duckdb", "--config", "cfg.yaml")
    assert code == 0
    return work


def events_json(*args: str) -> list[dict]:
    code, output = invoke("events", "--json", "--store", "s.duckdb", *args)
    assert code == 0, output
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


# -- ingest --------------------------------------------------------------------------------


def test_ingest_summary(work: Path) -> None:
    code, output = invoke("ingest", "logs", "--store", "s.duckdb", "--config", "cfg.yaml")
    assert code == 0, output
    assert "2 files (2 vault)" in flat(output)
    assert number(output, "records read") == 41
    assert number(output, "dead-lettered") == 0
    assert number(output, "events") == 21
    assert number(output, "stored (new)") == 21
    assert number(output, "already stored") == 0
    assert (work / "s.duckdb").is_file()
    assert not (work / "data").exists()  # --store overrides the configured path

    code, output = invoke("ingest", "logs", "--store", "s.duckdb", "--config", "cfg.yaml")
    assert code == 0
    assert number(output, "stored (new)") == 0
    assert number(output, "already stored") == 21


def test_ingest_reports_dead_letters_and_strict(work: Path) -> None:
    (work / "logs" / "junk.log").write_bytes(GARBAGE)
    code, output = invoke("ingest", "logs", "--store", "s.duckdb")
    assert code == 0
    text = flat(output)
    assert number(output, "dead-lettered") == 2
    assert "2 dead letters" in text
    assert "unrecognised format" in text
    assert "junk.log:1 (byte 0)" in text
    code, _ = invoke("ingest", "logs", "--store", "s.duckdb", "--strict")
    assert code == 1


def test_ingest_skips_a_store_kept_in_the_input_folder(work: Path) -> None:
    for run in range(2):  # the second run finds the store and its WAL in the folder
        code, output = invoke("ingest", "logs", "--store", "logs/s.duckdb")
        assert code == 0, output
        assert number(output, "dead-lettered") == 0
        assert "secretwatch dead-letters" not in output  # no "N dead letters (see ...)"
        assert number(output, "stored (new)") == (21 if run == 0 else 0)
    assert "files not read (documentation, DuckDB stores): logs/s.duckdb" in flat(output)


def test_ingest_uses_configured_store_path(work: Path) -> None:
    (work / "cfg2.yaml").write_text("store:\n  path: stores/main.duckdb\n")
    code, output = invoke("ingest", "logs", "--config", "cfg2.yaml")
    assert code == 0, output
    assert (work / "stores" / "main.duckdb").is_file()


# -- events --------------------------------------------------------------------------------


def test_events_json_fields(ingested: Path) -> None:
    events = events_json("--limit", "0")
    assert len(events) == 21
    for event in events:
        assert list(event) == JSON_KEYS
        assert event["source"] == "vault"
        assert event["backend"] == "lab"  # from the config's backends section
        assert event["timestamp"].endswith("+00:00")
    first = events[0]
    assert first["event_id"] == "11111111-1111-4111-8111-000000000001"
    assert first["timestamp"] == "2026-05-01T03:10:00.104000+00:00"
    assert (first["identity"], first["identity_kind"]) == ("shop/orders-api", "service")
    assert (first["secret"], first["action"], first["outcome"]) == (
        "secret/apps/orders/db",
        "read",
        "success",
    )
    assert first["user_agent"] == "vault-agent/1.15.2"
    assert first["error"] is None and first["note"] is None
    housekeeping = [e for e in events if e["action"] == "auth"]
    assert len(housekeeping) == 5
    assert all(e["secret"] is None for e in housekeeping)
    noted = {e["event_id"][-2:]: e["note"] for e in events if e["note"] is not None}
    assert noted.pop("06") == "control-plane: enabled the secrets engine kv2"
    assert list(noted) == ["18"]  # the one request counted alone
    timestamps = [e["timestamp"] for e in events]
    assert timestamps == sorted(timestamps)


def test_events_default_limit_and_newest(ingested: Path) -> None:
    assert len(events_json()) == 21  # default limit 50
    assert len(events_json("--limit", "3")) == 3
    newest = events_json("--newest", "--limit", "1")
    assert newest[0]["timestamp"].startswith("2026-05-02T08:00:02")


@pytest.mark.parametrize(
    ("args", "check", "count"),
    [
        (("--identity", "alice"), lambda e: e["identity"] == "alice", 2),
        (("--identity", "shop/*"), lambda e: e["identity"] == "shop/orders-api", 8),
        (("--action", "list"), lambda e: e["action"] == "list", 3),
        (("--outcome", "denied"), lambda e: e["outcome"] == "denied", 1),
        (
            ("--secret", "secret/apps/orders/*"),
            lambda e: e["secret"].startswith("secret/apps/orders/"),
            6,
        ),
        (("--source", "vault"), lambda e: e["source"] == "vault", 21),
        (("--source", "aws"), lambda e: False, 0),
        (
            ("--since", "2026-05-01T03:15:00", "--until", "2026-05-01T03:17:00Z"),
            lambda e: "2026-05-01T03:15" <= e["timestamp"] < "2026-05-01T03:17",
            4,
        ),
        (("--identity", "alice", "--outcome", "success"), lambda e: e["action"] == "list", 1),
    ],
)
def test_events_filters(ingested: Path, args: tuple[str, ...], check, count: int) -> None:  # noqa: ANN001
    events = events_json("--limit", "0", *args)
    assert len(events) == count
    assert all(check(e) for e in events)


def test_events_table(ingested: Path) -> None:
    code, output = invoke("events", "--store", "s.duckdb", "--outcome", "denied")
    assert code == 0
    text = flat(output)
    assert "1 events" in text
    assert "alice" in text
    assert "secret/apps/payments/stripe" in text
    assert "2026-05-01 03:18:07" in text


def test_bad_action_value(ingested: Path) -> None:
    code, output = invoke("events", "--store", "s.duckdb", "--action", "steal")
    assert code == 2
    text = flat(output)
    assert "--action" in text
    assert "'steal'" in text
    assert "read, list, write, delete, rotate, auth, control, other" in text


@pytest.mark.parametrize(
    ("option", "value"),
    [("--outcome", "maybe"), ("--source", "splunk"), ("--since", "last tuesday")],
)
def test_bad_filter_values(ingested: Path, option: str, value: str) -> None:
    code, output = invoke("events", "--store", "s.duckdb", option, value)
    assert code == 2
    assert option in flat(output)
    assert value in flat(output)


# -- stats ---------------------------------------------------------------------------------


def test_stats_by_identity(ingested: Path) -> None:
    code, output = invoke("stats", "--by", "identity", "--store", "s.duckdb")
    assert code == 0, output
    text = flat(output)
    assert text.startswith("21 events")
    assert "by identity" in text
    assert "by source" not in text
    lines = {
        line.split()[0]: line.split() for line in (flat(raw) for raw in output.splitlines()) if line
    }
    assert lines["shop/orders-api"][1:3] == ["8", "0"]
    assert lines["alice"][1:3] == ["2", "1"]
    assert lines["billing-worker"][1] == "6"


def test_stats_default_groups_and_filter(ingested: Path) -> None:
    code, output = invoke("stats", "--store", "s.duckdb", "--identity", "alice")
    assert code == 0
    text = flat(output)
    assert text.startswith("2 events")
    for group in ("by source", "by identity", "by secret", "by outcome"):
        assert group in text


def test_stats_bad_group(ingested: Path) -> None:
    code, output = invoke("stats", "--by", "colour", "--store", "s.duckdb")
    assert code == 2
    assert "colour" in flat(output)
    assert "identity" in flat(output)


# -- dead letters --------------------------------------------------------------------------


def test_dead_letters(work: Path) -> None:
    (work / "logs" / "junk.log").write_bytes(GARBAGE)
    secret_line = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}\n'
    (work / "logs" / "junk.log").write_bytes(GARBAGE + secret_line)
    assert invoke("ingest", "logs", "--store", "s.duckdb")[0] == 0
    code, output = invoke("dead-letters", "--store", "s.duckdb")
    assert code == 0
    text = flat(output)
    assert text.startswith("3 dead letters")
    assert "junk.log:1 (byte 0) [?] unrecognised format" in text
    assert "junk.log:3 (byte 37)" in text
    assert "aHVudGVyMg" not in output
    code, output = invoke("dead-letters", "--store", "s.duckdb", "--raw", "--limit", "0")
    assert code == 0
    assert "hello world" in output
    assert "[REDACTED]" in output
    assert "aHVudGVyMg" not in output  # raw bytes are kept redacted
    code, output = invoke("dead-letters", "--store", "s.duckdb", "--limit", "1")
    assert flat(output).startswith("1 dead letters")


def test_dead_letters_unknown_positions_print_no_nan(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Elasticsearch store gives NaN for a text column some rows lack (idx, format), and
    a position may be unknown (a whole file, a Kafka record): shown empty, never `nan`."""
    import pandas as pd

    from pipeline.store.elasticsearch.events import _DEAD_COLUMNS
    from pipeline.store.elasticsearch.schema import frame

    at = "2026-05-01T00:00:00Z"
    docs = [
        {"file": "ct.json", "line": 1, "offset": 0, "idx": "Records[1]", "format": "aws",
         "reason": "bad record", "recorded_at": at},
        {"file": "junk.log", "line": 3, "offset": 37, "reason": "unrecognised format",
         "recorded_at": at},
    ]  # fmt: skip
    es_frame = frame(docs, _DEAD_COLUMNS)
    unknown = es_frame.iloc[[1]].astype({"line": "float64", "offset": "float64"})
    unknown[["file", "line", "offset", "reason"]] = ["big.yaml", float("nan"), float("nan"),
                                                     "not valid YAML"]  # fmt: skip
    letters = pd.concat([es_frame.astype({"line": "float64", "offset": "float64"}), unknown])
    monkeypatch.setattr(DuckDBStore, "dead_letters", lambda self, limit=None: letters)
    assert invoke("ingest", "logs", "--store", "s.duckdb")[0] == 0
    code, output = invoke("dead-letters", "--store", "s.duckdb")
    assert code == 0, output
    assert "nan" not in output.lower()
    text = flat(output)
    assert "ct.json:1 (byte 0) Records[1] [aws] bad record" in text
    assert "junk.log:3 (byte 37) [?] unrecognised format" in text
    assert "big.yaml [?] not valid YAML" in text


# -- errors --------------------------------------------------------------------------------


def test_missing_input_file(work: Path) -> None:
    code, output = invoke("ingest", "logs/no-such-file.log", "--store", "s.duckdb")
    assert code == 2
    assert "error:" in output
    assert "logs/no-such-file.log" in flat(output)
    assert "no such file" in flat(output)


@pytest.mark.parametrize(
    "args",
    [
        ("ingest", "logs", "--store", "afile/x.duckdb"),
        ("ingest", "logs", "--store", "afile/sub/x.duckdb"),
        ("ingest", "afile/x.log", "--store", "s.duckdb"),
        ("ingest", "--follow", "afile/x.log", "--store", "s.duckdb"),
        ("replay", "-i", "logs", "--train-until", "2026-01-01", "--alerts", "afile/a.jsonl"),
    ],
)
def test_a_file_where_a_folder_is_needed_is_named(work: Path, args: tuple[str, ...]) -> None:
    """ENOTDIR (and mkdir -p's EEXIST) name the file in the way, never "File exists"."""
    (work / "afile").write_text("a file, not a folder\n")
    code, output = invoke(*args)
    assert code == 2, output
    assert "afile is a file, not a directory" in flat(output)
    assert "File exists" not in output


def test_missing_store_for_reading(work: Path) -> None:
    for command in ("events", "stats", "dead-letters"):
        code, output = invoke(command, "--store", "missing.duckdb")
        assert code == 2, command
        text = flat(output)
        assert "missing.duckdb" in text
        assert "does not exist" in text
        assert "secretwatch ingest" in text
    assert not (work / "missing.duckdb").exists()


def test_unreadable_store_file(work: Path) -> None:
    (work / "bad.duckdb").write_text("not a database at all\n" * 50)
    code, output = invoke("events", "--store", "bad.duckdb")
    assert code == 2
    assert "bad.duckdb" in flat(output)
    assert "error:" in output


@pytest.fixture
def locked_store(work: Path) -> Iterator[Path]:
    path = work / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield path
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(timeout=30)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            for stream in (holder.stdout, holder.stderr):
                if stream is not None:
                    stream.close()


def test_locked_store(locked_store: Path) -> None:
    for args in (("ingest", "logs"), ("events",)):
        code, output = invoke(*args, "--store", str(locked_store))
        assert code == 2, args
        text = flat(output)
        assert "in use by another process" in text
        assert "busy.duckdb" in text


def test_bad_config_key(work: Path) -> None:
    (work / "bad.yaml").write_text("store:\n  pth: x.duckdb\n")
    code, output = invoke("ingest", "logs", "--config", "bad.yaml")
    assert code == 2
    text = flat(output)
    assert "bad.yaml" in text
    assert "store.pth: unknown key" in text
    assert "valid keys here: type, path" in text
    assert not (work / "x.duckdb").exists()


def test_config_from_environment(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "bad.yaml").write_text("ingest:\n  batch_size: many\n")
    monkeypatch.setenv(ENV_VAR, "bad.yaml")
    code, output = invoke("events", "--store", "s.duckdb")
    assert code == 2
    assert "ingest.batch_size" in flat(output)
    assert "'many'" in flat(output)


def test_unknown_format(work: Path) -> None:
    code, output = invoke("ingest", "logs", "--store", "s.duckdb", "--format", "splunk")
    assert code == 2
    text = flat(output)
    assert "splunk" in text
    assert "vault" in text


# -- replay, train, detect -----------------------------------------------------------------

HISTORY_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
CUT_OFF = HISTORY_START + timedelta(days=21)
ROOT_AT = CUT_OFF + timedelta(hours=3, minutes=10)
LATER = 49  # calls after the cut-off in the history below
ROOT_REQUEST = "7007aaaa-0000-4000-8000-00000000c0de"
VALUE_HMAC = "hmac-sha256:" + "5ec2e7" * 10  # an HMAC'd secret value in a response
ALERT_KEYS = {
    "id",
    "detector",
    "identity",
    "severity",
    "score",
    "timestamp",
    "explanation",
    "evidence",
}
SERVICE = {
    "display_name": "kubernetes-shop-orders-api",
    "policies": ["default", "orders"],
    "token_policies": ["default", "orders"],
    "metadata": {
        "role": "orders",
        "service_account_name": "orders-api",
        "service_account_namespace": "shop",
    },
    "entity_id": "1f3b0c2a-0000-4000-8000-000000000001",
    "token_type": "service",
}
ROOT_AUTH = {
    "display_name": "root",
    "policies": ["root"],
    "token_policies": ["root"],
    "token_type": "service",
}


def vault_call(
    rng: random.Random, when: datetime, auth: dict, path: str, ip: str, request_id: str
) -> bytes:
    """One read as a Vault file audit device logs it: a request line and a response line
    sharing `request.id`, with HMAC'd tokens and response data."""
    token = "hmac-sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest()
    full_auth = {"client_token": token, "accessor": token[::-1], **auth}
    request = {
        "id": request_id,
        "operation": "read",
        "mount_type": "kv",
        "mount_point": "secret/",
        "client_token": token,
        "namespace": {"id": "root"},
        "path": path,
        "remote_address": ip,
        "remote_port": rng.randrange(30000, 65000),
        "headers": {"user-agent": ["vault-client-go/0.4.3"]},
    }
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    answered = (when + timedelta(milliseconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    response = {
        "mount_type": "kv",
        "data": {"data": {"password": VALUE_HMAC}, "metadata": {"version": 3}},
    }
    return (
        orjson.dumps({"time": stamp, "type": "request", "auth": full_auth, "request": request})
        + b"\n"
        + orjson.dumps(
            {
                "time": answered,
                "type": "response",
                "auth": full_auth,
                "request": request,
                "response": response,
            }
        )
        + b"\n"
    )


def write_vault_history(path: Path, days: int = 22) -> int:
    """`days` days of shop/orders-api reading its two secrets a few times every hour, and one
    read with the root token three hours after the cut-off; return the calls after it."""
    rng = random.Random(11)
    lines: list[bytes] = []
    later = 1
    for hour in range(days * 24):
        at = HISTORY_START + timedelta(hours=hour)
        for _ in range(rng.randint(1, 3)):
            later += at >= CUT_OFF
            secret = rng.choice(["db", "stripe"])
            lines.append(
                vault_call(
                    rng,
                    at + timedelta(seconds=rng.randrange(3600)),
                    SERVICE,
                    f"secret/data/shop/orders/{secret}",
                    "10.244.1.7",
                    str(uuid.UUID(int=rng.getrandbits(128))),
                )
            )
    lines.append(
        vault_call(rng, ROOT_AT, ROOT_AUTH, "secret/data/payments/db", "203.0.113.9", ROOT_REQUEST)
    )
    path.write_bytes(b"".join(lines))
    return later


@pytest.fixture
def history(work: Path) -> Path:
    """A folder holding the history as a Vault audit log."""
    folder = work / "history"
    folder.mkdir()
    assert write_vault_history(folder / "vault.log") == LATER
    return folder


def alert_lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replay_writes_the_root_alert(history: Path, work: Path) -> None:
    code, output = invoke(
        "replay",
        "--input",
        "history",
        "--train-until",
        CUT_OFF.isoformat(),
        "--alerts",
        "out/alerts.jsonl",
    )
    assert code == 0, output
    assert number(output, "dead-lettered") == 0
    alerts = alert_lines(work / "out" / "alerts.jsonl")
    assert len(alerts) == 1  # the service's usual reads raise nothing
    [alert] = alerts
    assert ALERT_KEYS <= set(alert)
    assert alert["identity"] == "root"
    assert "root_token" in alert["detectors"]
    assert alert["severity"] == "critical"
    assert alert["evidence"] == [ROOT_REQUEST]  # the Vault request id
    assert alert["timestamp"].startswith(ROOT_AT.strftime("%Y-%m-%dT%H:%M:%S"))
    assert "secret/payments/db" in alert["explanation"]
    assert VALUE_HMAC not in (work / "out" / "alerts.jsonl").read_text()
    text = flat(output)
    assert "1 alert written to out/alerts.jsonl" in text
    trained, known, replayed = re.findall(
        r"trained on ([\d,]+) events before (?:\S+) \((\d+) identities now known\), "
        r"replayed ([\d,]+)",
        text,
    )[0]
    assert int(trained.replace(",", "")) + int(replayed.replace(",", "")) == number(
        output, "events"
    )
    assert int(replayed.replace(",", "")) == LATER  # the last day's reads, and root's
    assert known == "2"  # the service, and root since the cut-off
    assert "CRITICAL" in text and alert["id"] in text


def test_replay_reports_dead_letters_and_goes_on(history: Path, work: Path) -> None:
    (work / "broken.log").write_bytes(
        b'{"time":"2026-03-23T05:00:00Z","type":"request","request":{"id":"x", "pa\n'
    )
    code, output = invoke(
        "replay",
        "-i",
        "history",
        "-i",
        "broken.log",
        "--format",
        "vault",
        "--train-until",
        CUT_OFF.strftime("%Y-%m-%dT%H:%M:%S"),  # no zone: UTC
        "--alerts",
        "alerts.jsonl",
    )
    assert code == 0, output
    assert number(output, "dead-lettered") == 1
    text = flat(output)
    assert "1 dead letters" in text
    assert "broken.log:1" in text
    assert "not valid JSON" in text
    [alert] = alert_lines(work / "alerts.jsonl")
    assert alert["evidence"] == [ROOT_REQUEST]


@pytest.mark.parametrize("value", ["soon", "2026-13-01", ""])
def test_replay_bad_train_until(history: Path, work: Path, value: str) -> None:
    code, output = invoke(
        "replay", "--input", "history", "--train-until", value, "--alerts", "alerts.jsonl"
    )
    assert code == 2
    text = flat(output)
    assert "--train-until" in text
    assert f"{value!r} is not ISO-8601" in text
    assert not (work / "alerts.jsonl").exists()


def test_ingest_train_detect(history: Path, work: Path) -> None:
    store = ("--store", "s.duckdb")
    assert invoke("ingest", "history", *store)[0] == 0
    code, output = invoke("train", "--until", CUT_OFF.isoformat(), *store)
    assert code == 0, output
    text = flat(output)
    assert "baselines version 1: 1 identities learned" in text
    assert CUT_OFF.isoformat() in text

    code, output = invoke("detect", *store)
    assert code == 0, output
    text = flat(output)
    assert "1 alert raised or updated" in text
    with DuckDBStore(work / "s.duckdb", read_only=True) as opened:
        stored = opened.alerts()
    assert list(stored["identity"]) == ["root"]
    assert orjson.loads(stored["body"][0])["evidence"] == [ROOT_REQUEST]
    assert "CRITICAL" in text
    assert stored["id"][0] in text
    assert "secret/payments/db" in text

    code, output = invoke("detect", *store)  # caught up: nothing new, nothing twice
    assert code == 0, output
    assert "0 alerts raised or updated" in flat(output)
    with DuckDBStore(work / "s.duckdb", read_only=True) as opened:
        assert len(opened.alerts()) == 1


def test_detect_before_train(history: Path, work: Path) -> None:
    assert invoke("ingest", "history", "--store", "s.duckdb")[0] == 0
    code, output = invoke("detect", "--store", "s.duckdb")
    assert code == 2
    text = flat(output)
    assert "error:" in text
    assert "no baselines yet" in text
    assert "run `secretwatch train` first" in text
    assert "Traceback" not in output


# -- the real console script ---------------------------------------------------------------


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("secretwatch")
    if script.exists():
        return [str(script)]
    found = shutil.which("secretwatch")
    if found:
        return [found]
    return [sys.executable, "-c", "from pipeline.cli import app; app()"]


def test_console_script_end_to_end(work: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.update(WIDE)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_console_script(), *args],
            capture_output=True,
            text=True,
            cwd=work,
            env=env,
            timeout=120,
            check=False,
        )

    ingest = run("ingest", "logs", "--store", "e2e.duckdb")
    assert ingest.returncode == 0, ingest.stderr
    assert number(ingest.stdout, "stored (new)") == 21
    events = run("events", "--json", "--store", "e2e.duckdb", "--identity", "alice")
    assert events.returncode == 0, events.stderr
    parsed = [orjson.loads(line) for line in events.stdout.splitlines()]
    assert [e["event_id"][-2:] for e in parsed] == ["03", "11"]
    assert parsed[1]["outcome"] == "denied"
    missing = run("ingest", "nowhere.log", "--store", "e2e.duckdb")
    assert missing.returncode == 2
    assert "nowhere.log" in missing.stderr
    assert "Traceback" not in missing.stderr
    help_ = run("--help")
    assert help_.returncode == 0
    for command in ("ingest", "events", "stats", "dead-letters"):
        assert command in help_.stdout


def test_commands_do_not_load_detection_libraries() -> None:
    """`events`, `report` and the rest start without scikit-learn: importing it (through the
    detection runtime) cost every command about a second, and made `report` slower than
    before the CLI became a package. Only the commands that detect load it."""
    probe = (
        "import sys, pipeline.cli; "
        "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "[]"


# ... and no parser (pipeline.sources: 70 ms, the config needs only the source names)
STORE_LIBRARIES = ("pandas", "pyarrow", "duckdb", "elasticsearch", "pipeline.sources")
CONFIG_MODELS = "pipeline.config"  # pydantic models: a fifth of a second to build
LOADED = textwrap.dedent(
    """
    import sys
    try:
        from pipeline.cli import app
        app(sys.argv[2:], prog_name="secretwatch")
    finally:
        loaded = sorted(m for m in sys.argv[1].split(",") if m in sys.modules)
        print("loaded:", loaded, file=sys.stderr)
    """
)


def test_events_through_the_api_loads_no_store_library(ingested: Path) -> None:
    """`import pipeline.cli`, and `events --server` in a fresh process, load neither pandas,
    pyarrow, DuckDB nor the Elasticsearch client: importing them made a query of a running
    service take 3 s, most of it before the command started. The Arrow stream the API
    answers is read without them (nanoarrow), and prints what the store prints. With no
    config file to read, the config's models are not built either."""

    def open_reader() -> Store:
        store = DuckDBStore(ingested / "s.duckdb", read_only=True)
        store.open()
        return store

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        modules = ",".join((*STORE_LIBRARIES, CONFIG_MODELS))
        command = [sys.executable, "-c", LOADED, modules, *args]
        env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
        return subprocess.run(  # in a folder with no config/default.yaml
            command, capture_output=True, text=True, timeout=120, check=False, cwd=ingested, env=env
        )

    server = HttpServer("api", "127.0.0.1", 0, Starlette(routes=query_routes(open_reader, None)))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        table, as_json = run("events", "--server", url), run("events", "--server", url, "--json")
    finally:
        server.stop()
    for done in (table, as_json):  # the command imports pipeline.cli first: both are checked
        assert done.returncode == 0, done.stderr
        assert "loaded: []" in done.stderr, done.stderr
    assert "21 events" in flat(table.stdout)
    code, local = invoke("events", "--json", "--store", "s.duckdb")
    assert code == 0, local
    assert as_json.stdout == local
    assert len(local.splitlines()) == 21
