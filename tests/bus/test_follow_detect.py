"""`secretwatch ingest --follow --detect` as a real process: lines appended to a followed
Vault audit file are stored and judged as they arrive, alerts land in the store's outbox and
are delivered from it at once (the default config's JSON-lines sink), and a restart neither
loses nor repeats them.

The tests wait for what the follower did, never for a guessed time: the offset of its open
handle on the followed file (/proc/PID/fdinfo) shows what it has read, and SIGTERM lets the
batch being stored finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pipeline.store.duckdb import DuckDBStore

BIN = Path(sys.executable).parent / "secretwatch"
WAIT = 60.0  # the bound of every wait: generous, a loaded machine starts slowly


def _call(n: int, root: bool = False, path: str = "secret/data/orders/db") -> bytes:
    """A Vault request and its response, `n` seconds into 2026-05-01 03:00 UTC."""
    auth = (
        {"display_name": "root", "policies": ["root"]}
        if root
        else {
            "display_name": "approle",
            "metadata": {"role_name": "orders-api"},
            "policies": ["default"],
        }
    )
    out = b""
    for kind in ("request", "response"):
        out += (
            orjson.dumps(
                {
                    "time": f"2026-05-01T03:{n // 60:02d}:{n % 60:02d}.000000Z",
                    "type": kind,
                    "auth": auth,
                    "request": {
                        "id": f"req-{n}-{int(root)}",
                        "operation": "read",
                        "mount_type": "kv",
                        "path": path,
                        "remote_address": "10.0.0.5",
                    },
                }
            )
            + b"\n"
        )
    return out


def _alerts(store: Path) -> list[dict]:
    with DuckDBStore(store, read_only=True) as opened:
        return [orjson.loads(b) for b in opened.alerts()["body"]]


def _start(tmp_path: Path, log: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(BIN),
            "ingest",
            "--follow",
            "--detect",
            str(log),
            "--store",
            str(tmp_path / "s.duckdb"),
            *extra,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )


def _read_offset(pid: int, path: Path) -> int | None:
    """How far process `pid` has read its open handle on `path` (None: not open)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(os.readlink(fd)) != path:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:  # closed meanwhile
            continue
        return int(info.split("pos:", 1)[1].split()[0])
    return None


def _wait_read(proc: subprocess.Popen[str], log: Path) -> None:
    """Wait until the follower has read `log` to its end (it stores what it read before
    it heeds a SIGTERM), failing after WAIT seconds or if it exited."""
    path, size = log.resolve(), log.stat().st_size
    deadline = time.monotonic() + WAIT
    while (offset := _read_offset(proc.pid, path)) != size:
        if proc.poll() is not None:
            raise AssertionError(
                f"the follower exited ({proc.returncode}): {proc.communicate()[1]}"
            )
        assert time.monotonic() < deadline, f"read {offset} of {size} bytes in {WAIT:.0f} s"
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, stderr
    return stderr


def test_root_use_appended_to_a_followed_file_is_alerted_at_once(tmp_path: Path):
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(_call(n) for n in range(5)))
    delivered = tmp_path / "data" / "alerts.jsonl"  # config/default.yaml's sink, from cwd
    proc = _start(tmp_path, log)
    try:
        _wait_read(proc, log)  # following: what comes next is appended to a followed file
        with log.open("ab") as out:
            out.write(_call(30, root=True))
        # Delivered while the process runs (woken by the alert, not at shutdown).
        deadline = time.monotonic() + WAIT
        while not (delivered.exists() and delivered.read_bytes().endswith(b"\n")):
            assert time.monotonic() < deadline, "the alert was not delivered"
            time.sleep(0.1)
    finally:
        stderr = _stop(proc)
    assert "alert critical root" in " ".join(stderr.split())
    [alert] = _alerts(tmp_path / "s.duckdb")
    assert alert["identity"] == "root" and alert["evidence"] == ["req-30-1"]

    # Restarted, with more normal traffic: nothing lost, nothing raised again.
    with log.open("ab") as out:
        out.write(b"".join(_call(n) for n in range(40, 45)))
    proc = _start(tmp_path, log)
    try:
        _wait_read(proc, log)
    finally:
        _stop(proc)
    again = _alerts(tmp_path / "s.duckdb")
    assert [a["id"] for a in again] == [alert["id"]]
    lines = [orjson.loads(line) for line in delivered.read_bytes().splitlines()]
    assert [line["id"] for line in lines] == [alert["id"]]  # delivered once, across restarts
    with DuckDBStore(tmp_path / "s.duckdb", read_only=True) as opened:
        assert opened.count() == 11


def test_no_deliver_leaves_alerts_in_the_outbox(tmp_path: Path):
    log = tmp_path / "audit.log"
    log.write_bytes(_call(30, root=True))
    proc = _start(tmp_path, log, "--no-deliver")
    try:
        _wait_read(proc, log)
    finally:
        _stop(proc)
    [alert] = _alerts(tmp_path / "s.duckdb")
    assert not (tmp_path / "data" / "alerts.jsonl").exists()
    with DuckDBStore(tmp_path / "s.duckdb", read_only=True) as opened:
        pending = opened.pending_deliveries("alerts-file", 10, datetime.now(UTC))
    assert [p.alert_id for p in pending] == [alert["id"]]
