"""`secretwatch ship` against the real Kafka (`scripts/services start kafka`): raw bytes
unchanged, on the topic of their source, keyed by the source's natural key (so on the
partition `partition_of` predicts), unrecognised files dead-lettered; follow mode resumes
from its state file without losing or repeating a record."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafkatools import (
    Proc,
    TopicReader,
    drop,
    kafka_section,
    unique,
    wait_for,
    write_config,
)

from pipeline.bus import kafka
from pipeline.bus.kafka import partition_of
from pipeline.record import synthetic_id
from pipeline.sources.documents import document_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHIPPED = {  # fixture file -> its source
    "vault/audit.jsonl": "vault",
    "vault/audit_pretty.json": "vault",
    "gcp_audit/secretwatch__generated/generated.jsonl": "gcp",
    "aws_cloudtrail/secretwatch__generated/generated_records.json": "aws",
    "aws_cloudtrail/secretwatch__generated/eventbridge_get_secret_value.json": "aws",
    "azure_keyvault/secretwatch__generated/secretget_service_principal.json": "azure",
    "k8s_audit/secretwatch__generated/service_account_access.jsonl": "k8s",
}
NATURAL_KEY = {"aws": "eventID", "gcp": "insertId", "k8s": "auditID"}


def expected_key(source: str, value: bytes) -> bytes | None:
    """The key the issue asks for, from the record itself; None: the file:offset fallback."""
    doc = orjson.loads(value)
    if source == "vault":
        req = doc["request"]
        if req.get("id") not in (None, "", "****"):
            return req["id"].encode()
        # A masked id: what request and response share (the parser pairs on the same).
        parts = (req.get(k) for k in ("path", "operation", "remote_address", "remote_port"))
        return synthetic_id("vault", *parts).encode()
    if "Records" in doc:
        return None if len(doc["Records"]) > 1 else doc["Records"][0]["eventID"].encode()
    doc = doc.get("detail", doc)
    if source == "azure":
        return (doc.get("correlationId") or doc["id"]).encode()
    return doc[NATURAL_KEY[source]].encode()


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    for name in SHIPPED:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, target)
    (folder / "junk.log").write_bytes(b"this is not an audit log\nnor is this\n")
    return folder


@pytest.fixture
def made(kafka_bootstrap: str) -> Iterator[list[str]]:
    """Names of the topics a test makes; dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        drop(kafka_bootstrap, name)


def test_ship_produces_raw_bytes_unchanged_keyed_and_routed_by_source(
    tmp_path: Path, inputs: Path, kafka_bootstrap: str, made: list[str]
):
    name = unique("ship")
    made.append(name)
    section = kafka_section(kafka_bootstrap, name, tmp_path)
    config = write_config(tmp_path, section, {"type": "duckdb"})
    # A store kept in the folder is not shipped (was: its bytes as dead letters).
    (inputs / "old.duckdb").write_bytes(bytes(8) + b"DUCK" + bytes(4096))
    (inputs / "state.db").write_bytes(bytes(8) + b"DUCK" + bytes(4096))
    proc = Proc(tmp_path, "ship", "ship", "--config", str(config), str(inputs))
    assert proc.wait(120) == 0, proc.log()
    topics = [f"{name}.raw.{s}" for s in ("vault", "gcp", "aws", "azure", "k8s")]
    reader = TopicReader(kafka_bootstrap, *topics, f"{name}.dead")
    files = {name: (inputs / name).read_bytes() for name in SHIPPED}
    lines = {n: [x for x in data.splitlines() if x.strip()] for n, data in files.items()}
    # A JSON-lines file is a record per line; others, a record per top-level document.
    count = {
        n: len(lines[n]) if n.endswith(".jsonl") else len(document_records(data))
        for n, data in files.items()
    }
    want = sum(count.values()) + 2  # and a dead letter per junk line
    records = reader.read(want, timeout=60)
    reader.close()
    assert len(records) == want  # no duplicates

    by_topic = Counter(r.topic for r in records)
    for source in ("vault", "gcp", "aws", "azure", "k8s"):
        expected = sum(count[n] for n, s in SHIPPED.items() if s == source)
        assert by_topic[f"{name}.raw.{source}"] == expected, source

    originals = b"\n".join(files.values())
    for r in records:
        if r.topic == f"{name}.dead":
            letter = orjson.loads(r.value)
            assert letter["file"].endswith("junk.log")
            assert "unrecognised format" in letter["reason"]
            continue
        source = r.topic.rsplit(".", 1)[1]
        assert r.value in originals  # the bytes as they are in the file
        key = expected_key(source, r.value)
        if key is None:
            assert r.key.decode().rsplit(":", 1)[1].isdigit()  # file:offset
        else:
            assert r.key == key
        # What a member computes to know which identities it owns, for any key.
        assert r.partition == partition_of(r.key.decode(), 4)
    gcp = lines["gcp_audit/secretwatch__generated/generated.jsonl"]
    shipped = [r for r in records if r.topic == f"{name}.raw.gcp"]
    assert sorted(r.value for r in shipped) == sorted(gcp)
    for p in range(4):  # each partition keeps the file's order
        at = [gcp.index(r.value) for r in shipped if r.partition == p]
        assert at == sorted(at)
    summary = proc.out.read_text()
    assert "8 files" in summary and "dead-lettered (format not recognised)  2" in summary
    assert "2 files not read (documentation, DuckDB stores)" in summary


# -- follow mode ----------------------------------------------------------------------------
BASE = datetime(2026, 5, 1, 3, 10, tzinfo=UTC)


def vault_pair(n: int) -> bytes:
    """A request and its response entry (two lines) for call number n."""
    rid = str(uuid.UUID(int=0xF0110 << 64 | n))
    lines = []
    for kind in ("request", "response"):
        lines.append(
            orjson.dumps(
                {
                    "time": (BASE + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "type": kind,
                    "auth": {"display_name": "approle", "metadata": {"role_name": "orders-api"}},
                    "request": {
                        "id": rid,
                        "operation": "read",
                        "mount_type": "kv",
                        "path": "secret/data/app/db",
                        "remote_address": "10.0.0.5",
                    },
                }
            )
        )
    return b"\n".join(lines) + b"\n"


def append(path: Path, first: int, count: int) -> None:
    with path.open("ab") as out:
        for n in range(first, first + count):
            out.write(vault_pair(n))


def test_ship_follow_resumes_from_its_state_without_loss_or_repeat(
    tmp_path: Path, kafka_bootstrap: str, made: list[str]
):
    name = unique("follow")
    made.append(name)
    config = write_config(
        tmp_path,
        kafka_section(kafka_bootstrap, name, tmp_path),
        {"type": "duckdb"},
        ingest={"follow_poll_seconds": 0.05},
    )
    log = tmp_path / "audit.log"
    append(log, 0, 10)
    ship = Proc(tmp_path, "ship1", "ship", "--follow", "--config", str(config), str(log))
    reader = TopicReader(kafka_bootstrap, f"{name}.raw.vault")
    reader.read(20, timeout=60, settle=0)
    append(log, 10, 10)
    reader.read(40, timeout=60, settle=0)
    assert ship.stop() == 0, ship.log()
    state = orjson.loads((tmp_path / "ship-state.json").read_bytes())
    (saved,) = state["files"].values()
    assert saved["offset"] == log.stat().st_size  # acknowledged to the end

    # While stopped: more lines, then the file is rotated and a new one started.
    append(log, 20, 5)
    log.rename(tmp_path / "audit.log.1")
    append(log, 25, 5)
    ship = Proc(tmp_path, "ship2", "ship", "--follow", "--config", str(config), str(log))
    records = reader.read(60, timeout=60, settle=2.0)
    assert ship.stop() == 0, ship.log()
    reader.close()
    assert "rotated while stopped" in ship.log()
    assert len(records) == 60  # none lost, none twice
    shipped = sorted(r.value for r in records)
    written = sorted(line for n in range(30) for line in vault_pair(n).splitlines())
    assert shipped == written
    # Each call's request and response share a key, so a partition.
    per_key = Counter((r.key, r.partition) for r in records)
    assert set(per_key.values()) == {2} and len(per_key) == 30


def test_a_member_that_owns_nothing_joins_its_group_again(kafka_bootstrap: str):
    """`IdleRejoin` leaves and joins the group again (a new assignment, the listener told)
    once the member has owned nothing for its wait, then waits twice as long."""
    name = unique("idle")
    topic = f"{name}.events"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    consumer = None
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
        consumer = KafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=name,
            enable_auto_commit=False,
            session_timeout_ms=6000,
        )
        assigned: list[list[int]] = []

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pass

            def on_partitions_assigned(self, got):
                assigned.append(sorted(tp.partition for tp in got))

        listener = Listener()
        kafka.wait_for_partitions(consumer, [topic])
        consumer.subscribe([topic], listener=listener)

        def polled_until(count: int) -> bool:
            consumer.poll(timeout_ms=200)
            return len(assigned) >= count and bool(assigned[-1])

        wait_for(lambda: polled_until(1), 60, "the first assignment")
        # A busy broker may rebalance more than once before the member settles: count from
        # here (nothing below polls until the rejoin is asked for).
        before = len(assigned)
        now = [1000.0]  # the member's clock: only the test moves it
        idle = kafka.IdleRejoin(consumer, [topic], listener, clock=lambda: now[0])
        now[0] += kafka.IDLE_REJOIN_SECONDS - 0.5
        idle.check(False)  # not idle for long yet
        assert len(assigned) == before and idle.wait == kafka.IDLE_REJOIN_SECONDS
        now[0] += 1
        idle.check(False)
        assert idle.wait == 2 * kafka.IDLE_REJOIN_SECONDS
        wait_for(lambda: polled_until(before + 1), 60, "the assignment after joining again")
        assert assigned[-1] == [0, 1]
        idle.check(True)
        assert idle.wait == kafka.IDLE_REJOIN_SECONDS
    finally:
        if consumer is not None:
            consumer.close(autocommit=False)
        admin.close()
        drop(kafka_bootstrap, name)
