"""`secretwatch serve` benchmark, against a running service on the embedded store.

    python tests/bench/bench_serve.py [--seconds 10] [--alerts 40] [--interval 0.1]

(a) throughput: a Vault socket sender writes request/response pairs (one event each,
    unique request ids, fixture-shaped lines of about 1.1 KB) at full speed for N seconds;
    prints events/s sent, spooled and stored (from /metrics), and whether the spool grew
    (its depth at the end and its largest sample). Then the same paced at `--goal-rate`
    events/s (20,000): goal, stored as sent without the spool growing.
(b) delay: background pairs at `--rate` events/s (10,000: half the goal's load) on one
    connection, root-token calls every `--interval` s on another; the delay from writing a
    call to its alert at a webhook receiver (a separate process, bench_delivery's,
    verifying signatures). Goal: p99 < 500 ms.
(c) queries while (b) ingests: `GET /api/events?limit=100` and `/api/events/count` on the
    service's API, and the CLI's `secretwatch events --limit 100` (a new process: its import
    time is included and printed apart). Goal: under 1 s.
With `--one-core`, the service (every thread of it and of its detection process) runs on
the first CPU and this benchmark (senders, receiver, queries) on the other: the goal's
"on one core", with the load generator kept off it.
Not run by the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "bench"), str(REPO / "tests" / "service")]

from bench_delivery import SECRET, Receiver, _pct, _root_call  # noqa: E402
from servehelp import SECRETWATCH, Served, children_of, fixture_lines, write_config  # noqa: E402

TEMPLATE = b"11111111-1111-4111-8111-000000000001"


def now_text() -> bytes:
    """Vault's time format, now (a live stream's events are current)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z").encode()


class Pairs:
    """Unique request/response pairs stamped now, made a chunk at a time."""

    def __init__(self, tag: int) -> None:
        self.request, self.response = fixture_lines()[:2]
        self.times = [orjson.loads(line)["time"].encode() for line in (self.request, self.response)]
        self.tag, self.n = tag, 0

    def chunk(self, pairs: int) -> bytes:
        now = now_text()
        request = self.request.replace(self.times[0], now)
        response = self.response.replace(self.times[1], now)
        out: list[bytes] = []
        for _ in range(pairs):
            new = b"%08x-3333-4333-8333-%012x" % (self.tag, self.n)
            self.n += 1
            out += [request.replace(TEMPLATE, new), response.replace(TEMPLATE, new)]
        return b"\n".join(out) + b"\n"


def root_call(n: int) -> bytes:
    """bench_delivery's root-token call (request and response), stamped now."""
    lines = _root_call(n)
    old = orjson.loads(lines.splitlines()[0])["time"].encode()
    return lines.replace(old, now_text())


def stored(served: Served) -> float:
    return float(
        served.metric("secretwatch_events_stored_total", collector="vault_socket", source="vault")
    )


def depth(served: Served) -> float:
    return float(served.metric("secretwatch_spool_depth_bytes", collector="vault_socket"))


def throughput(served: Served, seconds: float, tag: int, rate: float | None = None) -> float:
    """(a), at full speed or paced at `rate` events/s; returns the events/s stored."""
    pairs = Pairs(tag)
    samples: list[float] = []
    before = stored(served)
    t0 = time.monotonic()
    sent = 0
    chunk = 500 if rate is None else max(1, int(rate * 0.01))  # paced: a chunk per 10 ms
    with served.vault() as sock:
        next_sample = t0
        while time.monotonic() - t0 < seconds:
            sock.sendall(pairs.chunk(chunk))
            sent += chunk
            if time.monotonic() >= next_sample:
                samples.append(depth(served))
                next_sample += 0.5
            if rate is not None and (pause := t0 + sent / rate - time.monotonic()) > 0:
                time.sleep(pause)
    elapsed = time.monotonic() - t0
    during = stored(served) - before
    end_depth = depth(served)
    # let it finish what was spooled, to see how far behind it was
    t1 = time.monotonic()
    while stored(served) - before < sent and time.monotonic() - t1 < 120:
        time.sleep(0.1)
    caught_up = time.monotonic() - t1
    pace = "full speed" if rate is None else f"{rate:,.0f} events/s"
    print(f"(a) Vault socket at {pace} for {elapsed:.1f} s")
    print(f"    sent      {sent / elapsed:>10,.0f} events/s ({sent:,} pairs)")
    print(f"    stored    {during / elapsed:>10,.0f} events/s during the window")
    print(
        f"    spool depth: end {end_depth / 1e6:.1f} MB, largest sample "
        f"{max(samples, default=0) / 1e6:.1f} MB; all stored {caught_up:.1f} s after the "
        f"sender stopped -> {'spool GREW' if caught_up > 1.0 else 'kept up'}"
    )
    return during / elapsed


def latency(served: Served, rx: Receiver, rate: float, alerts: int, interval: float) -> None:
    """(b) and (c)."""
    rx.reset()
    stop = threading.Event()

    def background() -> None:
        pairs = Pairs(3)
        per_tick = max(1, int(rate * 0.01))  # every 10 ms
        with served.vault() as sock:
            t0, n = time.monotonic(), 0
            while not stop.is_set():
                sock.sendall(pairs.chunk(per_tick))
                n += 1
                pause = t0 + n * 0.01 - time.monotonic()
                if pause > 0:
                    time.sleep(pause)

    feeder = threading.Thread(target=background, daemon=True)
    feeder.start()
    written: dict[str, float] = {}
    queries: list[tuple[str, float]] = []
    try:
        with served.vault() as sock:
            for n in range(alerts):
                written[f"bench-{n}"] = time.time()
                sock.sendall(root_call(n))
                time.sleep(interval)
                if n % 10 == 5:
                    for path in ("/api/events?limit=100", "/api/events/count"):
                        t = time.monotonic()
                        answer = served.get(path)
                        queries.append((f"{path} ({answer.status_code})", time.monotonic() - t))
        cli = _cli_query(served)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = {e for line in rx.lines() for e in line["evidence"]}
            if set(written) <= seen:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        feeder.join(10)
    arrived: dict[str, float] = {}
    for line in rx.lines():
        for e in line["evidence"]:
            arrived.setdefault(e, line["at"])
    each = {e: arrived[e] - written[e] for e in written if e in arrived}
    delays = sorted(each.values())
    slowest = sorted(each, key=lambda e: -each[e])[:3]
    print(
        f"(b) {alerts} root-token calls {interval:g} s apart over {rate:,.0f} background "
        f"events/s: {len(delays)}/{alerts} alerts arrived"
    )
    if delays:
        print(
            f"    socket write -> alert at receiver: p50 {_pct(delays, 0.5) * 1000:.0f} ms, "
            f"p99 {_pct(delays, 0.99) * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms "
            "(goal p99 < 500 ms)"
        )
        print("    slowest: " + ", ".join(f"{e} {each[e] * 1000:.0f} ms" for e in slowest))
    print("(c) queries while ingesting (goal < 1 s)")
    for path in sorted({p for p, _ in queries}):
        times = sorted(s for p, s in queries if p == path)
        print(f"    {path}: p50 {_pct(times, 0.5) * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    print(cli)


def _cli_query(served: Served) -> str:
    config = Path(served.log.name).parent / "serve.yaml"
    t = time.monotonic()
    bare = subprocess.run(
        [sys.executable, "-c", "import pipeline.cli"], cwd=REPO, capture_output=True, check=False
    )
    imports = time.monotonic() - t
    t = time.monotonic()
    run = subprocess.run(
        # --server: the bench's service listens on a free port, which its config cannot say
        [str(SECRETWATCH), "events", "--server", served.api, "--limit", "100"],
        cwd=config.parent,
        capture_output=True,
        check=False,
        timeout=120,
    )
    took = time.monotonic() - t
    status = "ok" if run.returncode == 0 and bare.returncode == 0 else f"exit {run.returncode}"
    tail = run.stderr.decode(errors="replace").strip().splitlines()[-1:] if run.returncode else []
    return (
        f"    CLI `secretwatch events --limit 100`: {took * 1000:.0f} ms ({status}), of which "
        f"about {imports * 1000:.0f} ms is importing the CLI {' '.join(tail)}"
    )


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` and of its children onto `cpus` (threads started later inherit
    it from the thread that starts them)."""
    for each in (pid, *children_of(pid)):
        for task in Path(f"/proc/{each}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except ProcessLookupError:  # a thread that ended meanwhile
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--alerts", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--goal-rate", type=float, default=20_000.0, help="(a) paced")
    parser.add_argument("--rate", type=float, default=10_000.0, help="(b)'s background")
    parser.add_argument("--one-core", action="store_true", help="the service on CPU 0 only")
    args = parser.parse_args()
    os.environ["BENCH_SECRET"] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cpus = sorted(os.sched_getaffinity(0))
        if args.one_core and len(cpus) < 2:
            parser.error("--one-core needs two CPUs: one for the service, one for the load")
        if args.one_core:
            os.sched_setaffinity(0, set(cpus[1:]))  # the receiver inherits it
        rx = Receiver(folder)
        served: Served | None = None
        try:
            hook = type("Hook", (), {"url": rx.url})()
            config = write_config(folder, hook)
            served = Served(config, folder)
            if args.one_core:
                pin(served.proc.pid, {cpus[0]})
                print(f"service on CPU {cpus[0]}, load on CPU {','.join(map(str, cpus[1:]))}")
            throughput(served, args.seconds, 1)
            throughput(served, args.seconds, 2, args.goal_rate)
            latency(served, rx, args.rate, args.alerts, args.interval)
        finally:
            if served is not None:
                code = served.terminate(120)
                print(f"serve exited {code}")
            rx.close()


if __name__ == "__main__":
    main()
