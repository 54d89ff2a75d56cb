"""A labelled scenario (`scenario_gen.py`) as the raw records a live deployment would put on
the raw topics: Vault audit lines in file order and CloudTrail events one by one (as
EventBridge or a CloudTrail Lake stream delivers them, not day-long S3 objects), merged by
time; plus the events the parsers make of them, to check a run against.

Used by the Kafka reliability tests and by bench_kafka.py.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario_gen import generate  # noqa: E402

from pipeline.bus import kafka  # noqa: E402
from pipeline.config import KafkaConfig  # noqa: E402
from pipeline.record import EventRow, to_micros  # noqa: E402
from pipeline.ship import record_key  # noqa: E402
from pipeline.sources import new_parser  # noqa: E402


@dataclass(frozen=True, slots=True)
class Raw:
    source: str
    key: bytes
    value: bytes
    ts_us: int


def scenario(folder: Path, days: int, scale: float, seed: int = 1) -> dict:
    """Generate the scenario into `folder` once; its labels."""
    labels = folder / "labels.json"
    if not labels.exists():
        generate(folder, seed, days, scale)
    return orjson.loads(labels.read_bytes())


def raw_records(folder: Path) -> list[Raw]:
    """The scenario's raw records in the order a live system would ship them."""
    return list(heapq.merge(_vault(folder), _aws(folder), key=lambda r: r.ts_us))


def _vault(folder: Path) -> Iterator[Raw]:
    path = folder / "vault" / "audit.log"
    offset = 0
    with path.open("rb") as lines:
        for line in lines:
            value = line.rstrip(b"\n")
            ts = to_micros(orjson.loads(value)["time"])
            yield Raw("vault", record_key("vault", value, str(path), offset), value, ts)
            offset += len(line)


def _aws(folder: Path) -> Iterator[Raw]:
    events = []
    for day in sorted((folder / "aws").glob("*.json")):
        for record in orjson.loads(day.read_bytes())["Records"]:
            value = orjson.dumps(record)
            key = record_key("aws", value, str(day), 0)
            events.append(Raw("aws", key, value, to_micros(record["eventTime"])))
    events.sort(key=lambda r: r.ts_us)
    return iter(events)


def expected_events(records: list[Raw]) -> dict[str, EventRow]:
    """Event id -> event, as the parsers make them from these records."""
    out: dict[str, EventRow] = {}
    for source in ("vault", "aws"):
        parser = new_parser(source)
        chunk = [(r.value, i, i) for i, r in enumerate(records) if r.source == source]
        result = parser.feed(chunk, source)
        result.extend(parser.flush(source))
        assert not result.dead, result.dead[:3]
        out.update((row.event_id, row) for row in result.rows)
    return out


def produce(
    cfg: KafkaConfig,
    records: list[Raw],
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> float:
    """Produce the records to their raw topics (at `rate` records/s if given), flushed;
    returns the seconds it took."""
    import time

    producer = kafka.producer(cfg)
    errors = kafka.SendErrors()
    start = time.perf_counter()
    try:
        for i, r in enumerate(records):
            if rate is not None and i % 100 == 0:
                ahead = start + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
                if on_progress is not None:
                    on_progress(i)
            topic = kafka.raw_topic(cfg, r.source)
            producer.send(topic, value=r.value, key=r.key).add_errback(errors)
        kafka.flush(producer, errors, "the raw topics")
    finally:
        producer.close()
    return time.perf_counter() - start
