"""What the serve tests share: a real `secretwatch serve` subprocess, a webhook receiver on
127.0.0.1, Vault lines to send, and bounded waits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "vault" / "audit.jsonl"
SECRETWATCH = Path(sys.executable).parent / "secretwatch"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec example
START_SECONDS = 60.0


def fixture_lines() -> list[bytes]:
    return [line for line in FIXTURE.read_bytes().splitlines() if line.strip()]


def vault_pairs(count: int, tag: int = 0) -> list[bytes]:
    """`count` request/response pairs (one event each, all answered), unique request ids."""
    request, response = fixture_lines()[:2]
    old = b"11111111-1111-4111-8111-000000000001"
    out: list[bytes] = []
    for i in range(count):
        new = b"%08x-2222-4222-8222-%012x" % (tag, i)
        out += [request.replace(old, new), response.replace(old, new)]
    return out


class Webhook:
    """A webhook receiver answering 200 and keeping each alert it got."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with hook.lock:
                    hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alert_ids(self) -> list[str]:
        with self.lock:
            return [b["data"]["id"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(folder: Path, webhook: Webhook | None, **extra: Any) -> Path:
    config: dict[str, Any] = {
        "store": {"type": "duckdb", "path": str(folder / "serve.duckdb")},
        "collectors": [{"type": "vault_socket", "listen": "tcp://127.0.0.1:0"}],
        "spool": {"path": str(folder / "spool")},
        "api": {"listen": "127.0.0.1:0"},
        "ingest": {"follow_poll_seconds": 0.2},
        "sinks": [],
    }
    if webhook is not None:
        config["sinks"] = [
            {
                "type": "webhook",
                "name": "hook",
                "url": webhook.url,
                "secret_env": "TEST_SERVE_WHSEC",
            }
        ]
    config.update(extra)
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid`, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` is still running (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Served:
    """`secretwatch serve --config` as a subprocess; the addresses it printed."""

    def __init__(self, config: Path, cwd: Path) -> None:
        env = {**os.environ, "TEST_SERVE_WHSEC": WEBHOOK_SECRET}
        self.log = open(cwd / "serve.log", "ab")  # noqa: SIM115 - closed in `wait`
        self.proc = subprocess.Popen(
            [str(SECRETWATCH), "serve", "--config", str(config)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.collectors: dict[str, str] = {}
        self.api = ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        while not self.api:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"serve did not start: {self.stderr()}")
            line = self.proc.stdout.readline().decode().strip()
            if line.startswith("collector "):
                name, _, where = line[len("collector ") :].partition(": ")
                self.collectors[name] = where
            elif line.startswith("api: "):
                self.api = line[len("api: ") :]

    def stderr(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def vault(self, name: str = "vault_socket") -> socket.socket:
        host, port = self.collectors[name][len("tcp://") :].rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=10)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.api + path, timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        key = f"{name}{{{want}}}" if labels else name
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.wait(10)

    def children(self) -> list[int]:
        """The pids of the service's child processes (its detection process)."""
        return children_of(self.proc.pid)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
