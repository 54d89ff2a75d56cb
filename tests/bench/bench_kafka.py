"""Distributed-flow benchmark: raw topic -> `secretwatch run` -> Elasticsearch, detection on.

    python tests/bench/bench_kafka.py [--events 200000] [--paced-seconds 30]

Needs the servers of `scripts/services start` (SECRETWATCH_KAFKA_BOOTSTRAP, SECRETWATCH_ES_URL).
The same labelled scenario (`scenario_gen.py`, sized to about --events events) goes through
(i)   embedded ingest into DuckDB, in this process: the baseline;
(ii)  its raw records, produced beforehand to the raw topics, through one member to
      Elasticsearch with detection on;
(iii) the same through two members.
Between (i) and (ii), the scenario's events are written to Elasticsearch from this process
alone (no Kafka, no detection), the ceiling of (ii) on the machine.
Rates are events stored per second, from the first batch a member stored to the last; the
events that came late to detection (stored, not judged) are counted from the members'
status lines.
Then (iv) one member takes the stream paced at half of (ii)'s rate, with a fresh identity
enumerating 40 secrets (an attack raising an alert) injected every second: the delays from
produce (the raw record's Kafka timestamp) to stored and to the alert, p50 and p99, as the
member measures them (`run --metrics`). What was produced in the first --warmup-seconds
(the member's first writes create indices and state) is reported apart, as maxima.

Goals: (ii) >= 50% of (i); p99 produce->alert < 2 s at half load. Every phase has a deadline;
topics and indices made here are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import yaml
from elasticsearch import Elasticsearch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raw_stream import Raw, expected_events, produce, raw_records, scenario  # noqa: E402

from pipeline.bus import kafka  # noqa: E402
from pipeline.config import KafkaConfig, load_config  # noqa: E402
from pipeline.ingest import Ingestor  # noqa: E402
from pipeline.record import EventRow, from_micros  # noqa: E402
from pipeline.store.duckdb import DuckDBStore  # noqa: E402
from pipeline.store.elasticsearch import ElasticsearchStore  # noqa: E402

BOOTSTRAP = os.environ.get("SECRETWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
ES_URL = os.environ.get("SECRETWATCH_ES_URL", "http://127.0.0.1:19200")
CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "secretwatch")
CACHE = Path(
    os.environ.get("SECRETWATCH_BENCH_CACHE", Path.home() / ".cache" / "secretwatch-bench")
)
EVENTS_AT_SCALE_1 = 370_000  # scenario_gen, 120 days


class Run:
    """One isolated setup: its own topics, groups and index prefix."""

    snapshot_seconds = 30.0  # the members' (--snapshot-seconds)

    def __init__(self, folder: Path, label: str, partitions: int = 4) -> None:
        self.name = f"bench{uuid.uuid4().hex[:8]}-{label}"
        self.folder = folder
        doc = {
            "store": {"type": "elasticsearch", "url": ES_URL, "index_prefix": self.name},
            "kafka": {
                "bootstrap_servers": BOOTSTRAP,
                "raw_topic_prefix": f"{self.name}.raw.",
                "events_topic": f"{self.name}.events",
                "dead_letter_topic": f"{self.name}.dead",
                "group_id": self.name,
                "partitions": partitions,
                "snapshot_seconds": self.snapshot_seconds,
            },
        }
        self.config = folder / f"{self.name}.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        cfg = load_config(self.config).kafka
        assert cfg is not None
        self.kcfg: KafkaConfig = cfg
        kafka.ensure_topics(cfg)
        self.members: list[subprocess.Popen[bytes]] = []
        self.metrics: list[Path] = []

    def start(self, n: int, deadline: float = 120) -> None:
        for i in range(n):
            metrics = self.folder / f"{self.name}-m{i}.jsonl"
            err = (self.folder / f"{self.name}-m{i}.err").open("wb")
            out = (self.folder / f"{self.name}-m{i}.out").open("wb")
            self.members.append(
                subprocess.Popen(
                    [
                        CLI,
                        "run",
                        "--config",
                        str(self.config),
                        "--member",
                        f"m{i}",
                        "--metrics",
                        str(metrics),
                    ],
                    stdout=out,
                    stderr=err,
                )
            )
            self.metrics.append(metrics)
        until = time.monotonic() + deadline
        while sorted(p for i in range(n) for p in self.owned(i)) != list(range(4)):
            if time.monotonic() > until:
                raise SystemExit(f"members did not own all partitions in {deadline} s")
            time.sleep(0.2)

    def owned(self, i: int) -> list[int]:
        text = (self.folder / f"{self.name}-m{i}.err").read_text(errors="replace")
        found = re.findall(r"detect: owns partitions \[([\d, ]*)\]", text)
        return [int(p) for p in found[-1].split(",") if p.strip()] if found else []

    def late(self) -> int:
        """Events that came late to detection (stored, not judged), from each member's last
        status line."""
        total = 0
        for i in range(len(self.members)):
            text = " ".join((self.folder / f"{self.name}-m{i}.out").read_text().split())
            found = re.findall(r"\(([\d,]+) came late", text)
            total += int(found[-1].replace(",", "")) if found else 0
        return total

    def lines(self) -> list[dict]:
        out = []
        for path in self.metrics:
            if path.exists():
                out += [orjson.loads(x) for x in path.read_bytes().splitlines() if x]
        return out

    def wait_stored(self, want: int, deadline: float) -> list[dict]:
        until = time.monotonic() + deadline
        while True:
            lines = self.lines()
            if sum(x["stored"] for x in lines) >= want:
                return lines
            if time.monotonic() > until:
                raise SystemExit(f"{self.name}: not all {want:,} events stored in {deadline} s")
            time.sleep(0.5)

    def stop(self) -> None:
        for p in self.members:
            p.terminate()
        for p in self.members:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()

    def stored(self) -> int:
        with ElasticsearchStore(ES_URL, self.name, read_only=True) as store:
            return store.count()

    def clean(self) -> None:
        client = Elasticsearch(ES_URL)
        try:
            client.indices.delete(index=f"{self.name}-*", allow_no_indices=True)
        finally:
            client.close()
        admin = kafka.KafkaAdminClient(**kafka.client_settings(self.kcfg))
        try:
            admin.delete_topics(kafka.all_topics(self.kcfg), raise_errors=False)
        finally:
            admin.close()


def embedded(folder: Path, work: Path) -> tuple[int, float]:
    store = DuckDBStore(work / "bench.duckdb")
    store.open()
    start = time.perf_counter()
    summary = Ingestor(store).ingest([str(folder / "vault"), str(folder / "aws")])
    elapsed = time.perf_counter() - start
    store.close()
    return summary.stored, elapsed


def store_only(work: Path, rows: list[EventRow], batch: int) -> float:
    """Events per second that Elasticsearch takes from this process alone, in the batches a
    member writes (no Kafka, no detection): the ceiling of (ii) on this machine."""
    run = Run(work, "store")
    try:
        with ElasticsearchStore(ES_URL, run.name) as store:
            store.write_batch(rows[:batch])  # creates the indices
            start = time.perf_counter()
            for i in range(batch, len(rows), batch):
                store.write_batch(rows[i : i + batch])
            elapsed = time.perf_counter() - start
    finally:
        run.clean()
    return (len(rows) - batch) / elapsed


def throughput(work: Path, records: list[Raw], events: int, members: int, deadline: float):
    run = Run(work, f"x{members}")
    try:
        produce(run.kcfg, records)
        run.start(members)
        lines = run.wait_stored(events, deadline)
        run.stop()
        stored, late = run.stored(), run.late()
    finally:
        run.stop()
        run.clean()
    stamps = sorted((x["t"], x["stored"]) for x in lines if x["stored"])
    first_t, first_n = stamps[0]
    seconds = (stamps[-1][0] - first_t) / 1000
    return (sum(n for _, n in stamps) - first_n) / seconds, seconds, stored, late


ATTACK_READS = 40  # a new identity's enumeration floor is 2 x 15 distinct secrets


def attack(n: int, ts_us: int) -> list[Raw]:
    """A fresh identity reading 40 secrets it never read, in one burst."""
    out = []
    for k in range(ATTACK_READS):
        rid = str(uuid.uuid4())
        when = from_micros(ts_us + k).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for kind in ("request", "response"):
            line = orjson.dumps(
                {
                    "time": when,
                    "type": kind,
                    "auth": {
                        "display_name": "approle",
                        "policies": ["default"],
                        "metadata": {"role_name": f"bench-intruder-{n}"},
                    },
                    "request": {
                        "id": rid,
                        "operation": "read",
                        "mount_type": "kv",
                        "mount_point": "secret/",
                        "path": f"secret/data/bench{n}/s{k}",
                        "remote_address": "198.51.100.7",
                    },
                }
            )
            out.append(Raw("vault", rid.encode(), line, ts_us))
    return out


def paced(
    work: Path,
    records: list[Raw],
    per_event: float,
    events_per_s: float,
    seconds: float,
    warmup: float,
) -> tuple[float, list[float], list[float], int, list[float], list[float]]:
    """The stream paced at `events_per_s` with an attack about every second; the delays
    of what was produced after the first `warmup` seconds (stored, first alert per attack),
    the number of attacks injected then, and the same delays during the warm-up."""
    run = Run(work, "paced")
    rate = events_per_s * per_event  # raw records per second
    stream: list[Raw] = []
    for i, r in enumerate(records[: int(rate * seconds)]):
        stream.append(r)
        if i and i % max(1, int(rate)) == 0:  # about once a second
            stream.extend(attack(i, r.ts_us))
    try:
        run.start(1)
        produce(run.kcfg, stream, rate=rate)
        time.sleep(5)
        run.stop()
        lines = run.lines()
    finally:
        run.stop()
        run.clean()
    produced = [(x["t"] - d, d) for x in lines for d in x.get("delay_ms", ())]
    cut = min(p for p, _ in produced) + warmup * 1000 if produced else 0.0
    stored = sorted(d for p, d in produced if p >= cut)
    early_stored = sorted(d for p, d in produced if p < cut)
    first: dict[str, float] = {}
    for x in lines:
        for a in x.get("alerts", ()):
            if a["identity"].startswith("bench-intruder-") and a["delay_ms"] is not None:
                first.setdefault(a["identity"], a["delay_ms"])  # the first alert on it
    steady = int(rate * warmup)  # attacks are named after their place in the stream
    alerts = sorted(d for name, d in first.items() if int(name.rsplit("-", 1)[1]) >= steady)
    early = sorted(d for name, d in first.items() if int(name.rsplit("-", 1)[1]) < steady)
    injected = sum(
        1
        for i in range(1, len(records[: int(rate * seconds)]))
        if i % max(1, int(rate)) == 0 and i >= steady
    )
    return rate, stored, alerts, injected, early_stored, early


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds per phase")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=5.0,
        help="paced phase: the first seconds, not counted in the delays",
    )
    parser.add_argument(
        "--snapshot-seconds",
        type=float,
        default=Run.snapshot_seconds,
        help="how often members snapshot their baselines",
    )
    args = parser.parse_args()
    Run.snapshot_seconds = args.snapshot_seconds
    scale = round(args.events / EVENTS_AT_SCALE_1, 3)
    folder = CACHE / f"scenario-120d-{scale}-{args.seed}"
    scenario(folder, days=120, scale=scale, seed=args.seed)
    records = raw_records(folder)
    expected = expected_events(records)
    events = len(expected)
    print(f"scenario: {events:,} events from {len(records):,} raw records ({folder})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n, t = embedded(folder, work)
        base = n / t
        print(f"(i)   embedded ingest into DuckDB: {base:>9,.0f} events/s ({n:,} in {t:.1f} s)")
        ceiling = store_only(work, list(expected.values()), 5000)
        print(
            f"      Elasticsearch writes alone:  {ceiling:>9,.0f} events/s (this process, "
            f"batches of 5,000, no Kafka, no detection) = {ceiling / base:.2f} of (i)"
        )
        rate1, t1, s1, late1 = throughput(work, records, events, 1, args.deadline)
        print(
            f"(ii)  1 member -> Elasticsearch:   {rate1:>9,.0f} events/s ({t1:.1f} s, "
            f"{s1:,} stored, {late1:,} came late); (ii)/(i) = {rate1 / base:.2f} "
            "(goal >= 0.50)"
        )
        rate2, t2, s2, late2 = throughput(work, records, events, 2, args.deadline)
        print(
            f"(iii) 2 members -> Elasticsearch:  {rate2:>9,.0f} events/s ({t2:.1f} s, "
            f"{s2:,} stored, {late2:,} came late); (iii)/(ii) = {rate2 / rate1:.2f}"
        )
        per_event = len(records) / events
        raw_rate, stored, alerts, injected, early_stored, early = paced(
            work, records, per_event, rate1 / 2, args.paced_seconds, args.warmup_seconds
        )
        print(
            f"(iv)  paced at {rate1 / 2:,.0f} events/s ({raw_rate:,.0f} raw records/s) for "
            f"{args.paced_seconds:.0f} s, 1 member; after the first "
            f"{args.warmup_seconds:.0f} s (warm-up):"
        )
        print(
            f"      produce->stored p50 {pct(stored, 0.5):,.0f} ms, p99 "
            f"{pct(stored, 0.99):,.0f} ms ({len(stored):,} events)"
        )
        print(
            f"      produce->alert  p50 {pct(alerts, 0.5):,.0f} ms, p99 "
            f"{pct(alerts, 0.99):,.0f} ms ({len(alerts)} of {injected} injected attacks "
            "alerted; goal p99 < 2000 ms)"
        )
        print(
            f"      warm-up: produce->stored max {max(early_stored, default=0):,.0f} ms, "
            f"produce->alert max {max(early, default=0):,.0f} ms ({len(early)} attacks)"
        )


if __name__ == "__main__":
    main()
