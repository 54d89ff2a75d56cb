"""Delivery benchmark: alerts per second to a local webhook receiver, and the delay from an
audit event entering the embedded streaming pipeline to its alert arriving there.

    python tests/bench/bench_delivery.py [--alerts 2000] [--events 60] [--interval 0.1]

The receiver is a separate process (so its work does not share our interpreter): an
http.server on 127.0.0.1 that verifies every Standard Webhooks signature, as a careful
receiver would, and records when each alert revision and each evidence event id arrived.

(a) throughput: N alerts in a fresh DuckDB outbox, `Deliverer.drain` to the receiver with
    batch_size 1 (one signed request per alert) and with batching (50 and 200 per request).
(b) latency: `embedded_pipeline` follows a Vault audit file with live detection and a
    delivery thread, as the embedded default runs; root-token calls are appended one at a
    time, each raising or growing an alert; the delay is receiver arrival minus the time
    the line was written. Goal: p99 under 1 s. `embedded_pipeline` wires today's parts
    (follow + LiveDetection + start_delivery_thread); pass another starter to
    `follow_latency` to measure a different streaming entry point (e.g. `secretwatch run`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - the spec's example key
Starter = Callable[[Any, Path, Path], Callable[[], None]]


# -- the receiver (its own process) -----------------------------------------------------------
def serve(record: Path, port_file: Path) -> None:
    """Verify, then append one JSON line per request: arrival time, keys, evidence ids."""
    from pipeline.sinks.signing import verify

    out = record.open("a", buffering=1)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            at = time.time()
            verify(SECRET, dict(self.headers.items()), body)
            data = json.loads(body)["data"]
            items = data if isinstance(data, list) else [data]
            line = json.dumps(
                {
                    "at": at,
                    "keys": [[i["id"], i["revision"]] for i in items],
                    "evidence": [e for i in items for e in i["evidence"]],
                }
            )
            with lock:
                out.write(line + "\n")
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


class Receiver:
    def __init__(self, folder: Path) -> None:
        self.record, port = folder / "received.jsonl", folder / "port"
        self.record.touch()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.record), str(port)], cwd=REPO
        )
        deadline = time.monotonic() + 20
        while not port.exists() or not port.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port.read_text()}/hook"

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def reset(self) -> None:
        self.record.write_text("")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _sinks(url: str, batch_size: int, folder: Path, with_file: bool) -> list[Any]:
    from pydantic import TypeAdapter

    from pipeline.sinks.settings import SinkConfig

    entries = [
        {
            "name": "hook",
            "type": "webhook",
            "url": url,
            "secret_env": "BENCH_SECRET",
            "batch_size": batch_size,
            "evidence_limit": 5000,
        }
    ]
    if with_file:  # the embedded default's file sink, alongside
        entries.append(
            {"name": "alerts-file", "type": "jsonl", "path": str(folder / "alerts.jsonl")}
        )
    return [TypeAdapter(SinkConfig).validate_python(e) for e in entries]


# -- (a) throughput -----------------------------------------------------------------------------
def throughput(rx: Receiver, n: int, batch_size: int, folder: Path) -> float:
    """Alerts per second from a full outbox to the receiver (all arrived, checked)."""
    sys.path.insert(0, str(REPO / "tests" / "sinks"))
    from outbox import many

    from pipeline.sinks.delivery import Deliverer
    from pipeline.sinks.settings import DeliveryConfig
    from pipeline.store.duckdb import DuckDBStore

    rx.reset()
    store = DuckDBStore(folder / f"tp-{batch_size}.duckdb")
    store.open()
    try:
        alerts = many(store, n)
        deliverer = Deliverer(
            store, _sinks(rx.url, batch_size, folder, False), DeliveryConfig(suppression_window=0)
        )
        deliverer.start()
        start = time.perf_counter()
        try:
            deliverer.drain(time.time() + 600)
        finally:
            deliverer.close()
        took = time.perf_counter() - start
    finally:
        store.close()
    got = {tuple(k) for line in rx.lines() for k in line["keys"]}
    assert got == {(a["id"], 1) for a in alerts}, f"{len(got)} of {n} arrived"  # noqa: S101
    return n / took


# -- (b) latency through the embedded streaming pipeline ---------------------------------------
def embedded_pipeline(config: Any, log: Path, store_path: Path) -> Callable[[], None]:
    """Follow `log` with live detection into the DuckDB outbox, and deliver from a thread
    that is woken whenever detection stores alerts. Returns `stop`."""
    from pipeline.bus.follow import follow_files
    from pipeline.detection.live import LiveDetection
    from pipeline.sinks.embed import start_delivery_thread
    from pipeline.store.duckdb import DuckDBStore

    store = DuckDBStore(store_path)
    store.open()
    live = LiveDetection(store, config.detectors, "bench")
    live.assign(lambda identity: "embedded")
    delivery = start_delivery_thread(lambda: DuckDBStore(store_path), config)

    def on_stored(rows: list) -> None:
        if live.process(rows, stored=True):
            delivery.wake()

    stop = threading.Event()
    follower = threading.Thread(
        target=follow_files,
        args=([str(log)], store, config),
        kwargs={"stop": stop, "on_stored": on_stored},
        daemon=True,
    )
    follower.start()

    def halt() -> None:
        stop.set()
        follower.join(30)
        delivery.stop()
        store.close()

    return halt


def _root_call(n: int) -> bytes:
    auth = {"display_name": "root", "policies": ["root"]}
    return b"".join(
        orjson.dumps(
            {
                "time": f"2026-05-01T03:{n // 60:02d}:{n % 60:02d}.000000Z",
                "type": kind,
                "auth": auth,
                "request": {
                    "id": f"bench-{n}",
                    "operation": "read",
                    "mount_type": "kv",
                    "path": "secret/data/payments/stripe",
                    "remote_address": "10.0.0.5",
                },
            }
        )
        + b"\n"
        for kind in ("request", "response")
    )


def follow_latency(
    rx: Receiver, events: int, interval: float, folder: Path, start: Starter = embedded_pipeline
) -> list[float]:
    """Seconds from writing each root-token call to its alert (revision) arriving."""
    from pipeline.config import load_config

    rx.reset()
    config = load_config(REPO / "config" / "default.yaml")
    config = config.model_copy(update={"sinks": _sinks(rx.url, 1, folder, True)})
    log = folder / "audit.log"
    log.write_bytes(b"")
    stop = start(config, log, folder / "stream.duckdb")
    written: dict[str, float] = {}
    try:
        time.sleep(1.0)  # the follower is up
        for n in range(events):
            with log.open("ab") as out:
                out.write(_root_call(n))
                written[f"bench-{n}"] = time.time()
            time.sleep(interval)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = {e for line in rx.lines() for e in line["evidence"]}
            if set(written) <= seen:
                break
            time.sleep(0.05)
    finally:
        stop()
    arrived: dict[str, float] = {}
    for line in rx.lines():
        for e in line["evidence"]:
            arrived.setdefault(e, line["at"])
    missing = set(written) - set(arrived)
    assert not missing, f"{len(missing)} events never reached the receiver"  # noqa: S101
    return sorted(arrived[e] - written[e] for e in written)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return
    os.environ["BENCH_SECRET"] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rx = Receiver(folder)
        try:
            print(f"(a) {args.alerts} alerts to a local webhook receiver (signed, verified)")
            for size in (1, 50, 200):
                rate = throughput(rx, args.alerts, size, folder)
                print(f"    batch_size {size:>3}: {rate:>8,.0f} alerts/s")
            print(
                f"(b) embedded follow mode, {args.events} root-token calls "
                f"{args.interval:g} s apart (default config + this webhook)"
            )
            delays = follow_latency(rx, args.events, args.interval, folder)
            print(
                f"    event written -> alert at receiver: p50 {_pct(delays, 0.5) * 1000:.0f} "
                f"ms, p99 {_pct(delays, 0.99) * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms"
                " (goal p99 < 1000 ms)"
            )
        finally:
            rx.close()


if __name__ == "__main__":
    main()
