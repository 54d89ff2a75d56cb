"""`secretwatch serve` as a real subprocess with the queue collectors: cloudtrail_sqs against
moto's S3+SQS and azure_eventhubs against Kafka's SASL listener (both run by
scripts/services). Killed with -9 mid-stream and started again, the service stores every
announced record exactly once: what was deleted or committed before the kill had been
spooled, and what was not comes again."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from servehelp import ROOT, Served, write_config
from services import SaslKafka
from waiting import wait_until

from pipeline.ingest import Ingestor
from pipeline.store.duckdb import DuckDBStore

CLOUDTRAIL = ROOT / "tests/fixtures/aws_cloudtrail/secretwatch__generated/generated_records.json"
KEYVAULT = sorted((ROOT / "tests/fixtures/azure_keyvault").glob("*/*.json"))


def stored_ids(folder: Path) -> list[str]:
    store = DuckDBStore(folder / "serve.duckdb", read_only=True)
    store.open()
    try:
        return list(store.events()["event_id"])
    finally:
        store.close()


def oracle_ids(folder: Path, fmt: str, documents: list[bytes]) -> set[str]:
    """The event ids of ingesting `documents` (one a line) the ordinary way."""
    folder.mkdir()
    (folder / "all.jsonl").write_bytes(b"\n".join(documents) + b"\n")
    with DuckDBStore(folder / "o.duckdb") as store:
        Ingestor(store, fmt=fmt).ingest([str(folder / "all.jsonl")])
        return set(store.events()["event_id"])


def restart_until_drained(config: Path, cwd: Path, collector: str, done: Any) -> None:
    again = Served(config, cwd)
    try:
        wait_until(done, timeout=90, what="every announcement handled")
        wait_until(lambda: again.get("/readyz").status_code == 200, timeout=60, what="caught up")
        wait_until(
            lambda: again.metric("secretwatch_spool_depth_bytes", collector=collector) == 0,
            timeout=60,
            what="spool drained",
        )
    finally:
        assert again.terminate() == 0, again.stderr()


# ---------------------------------------------------------------- cloudtrail_sqs


def cloudtrail_objects(count: int) -> list[bytes]:
    """`count` CloudTrail objects of 12 records each, every record with its own eventID."""
    records = orjson.loads(CLOUDTRAIL.read_bytes())["Records"]
    out = []
    for _ in range(count):
        mine = [{**r, "eventID": f"{uuid.uuid4()}"} for r in records]
        out.append(orjson.dumps({"Records": mine}))
    return out


def test_cloudtrail_sqs_kill_9_then_restart_stores_every_record_once(
    aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    name = f"serve-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    objects = cloudtrail_objects(60)
    for i, body in enumerate(objects):
        key = f"AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/02/{i:05d}.json"
        s3.put_object(Bucket=name, Key=key, Body=body)
        notice = {"s3Bucket": name, "s3ObjectKey": [key]}
        sqs.send_message(QueueUrl=queue_url, MessageBody=orjson.dumps(notice).decode())

    def queued() -> int:
        attrs = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    collector = {
        "type": "cloudtrail_sqs",
        "name": "cloudtrail",
        "queue_url": queue_url,
        "endpoint_url": aws_endpoint,
        "wait_seconds": 1,
        "visibility_timeout": 3,  # what the kill left in flight comes back soon
    }
    config = write_config(tmp_path, None, collectors=[collector])
    served = Served(config, tmp_path)
    try:
        assert "polls " + queue_url in served.collectors["cloudtrail"]
        wait_until(lambda: queued() <= 45, timeout=60, what="mid-stream")
    finally:
        served.kill()
    left = queued()
    assert 0 < left < len(objects)  # killed with messages deleted and messages pending

    restart_until_drained(config, tmp_path, "cloudtrail", lambda: queued() == 0)
    events = stored_ids(tmp_path)
    assert len(events) == len(set(events))
    assert set(events) == oracle_ids(tmp_path / "oracle", "aws", objects)
    assert len(events) == 12 * len(objects)


# ---------------------------------------------------------------- azure_eventhubs


def keyvault_envelopes(count: int) -> list[bytes]:
    """`count` `{"records": [...]}` envelopes, every record with its own correlationId."""
    records = [orjson.loads(p.read_bytes()) for p in KEYVAULT]
    return [
        orjson.dumps({"records": [{**r, "correlationId": str(uuid.uuid4())} for r in records]})
        for _ in range(count)
    ]


def test_azure_eventhubs_kill_9_then_restart_stores_every_record_once(
    kafka_sasl: SaslKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SERVE_EVENTHUBS", kafka_sasl.password)
    sasl: dict[str, Any] = {
        "bootstrap_servers": kafka_sasl.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "$ConnectionString",
        "sasl_plain_password": kafka_sasl.password,
    }
    topic = f"insights-logs-auditevent-{uuid.uuid4().hex[:10]}"
    group = f"serve-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(**sasl, request_timeout_ms=60_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    envelopes = keyvault_envelopes(1500)
    producer = KafkaProducer(**sasl, acks="all", linger_ms=5)
    partitions = [TopicPartition(topic, p) for p in (0, 1)]
    watcher = KafkaConsumer(**sasl, group_id=group)

    def committed() -> int:
        return sum(watcher.committed(tp) or 0 for tp in partitions)

    def produce() -> None:  # at an even pace, so that the kill falls mid-stream
        for at in range(0, len(envelopes), 50):
            for i, value in enumerate(envelopes[at : at + 50]):
                producer.send(topic, value=value, partition=i % 2)
            producer.flush(timeout=60)

    collector = {
        "type": "azure_eventhubs",
        "name": "keyvault",
        "bootstrap": kafka_sasl.bootstrap,
        "topic": topic,
        "group": group,
        "security_protocol": "SASL_PLAINTEXT",
        "connection_string_env": "TEST_SERVE_EVENTHUBS",
        "session_timeout_ms": 6000,  # the killed member's partitions move on soon
    }
    config = write_config(tmp_path, None, collectors=[collector])
    sender = threading.Thread(target=produce, daemon=True)
    served = Served(config, tmp_path)
    try:
        assert served.collectors["keyvault"].startswith(f"consumes {topic}")
        # partitions assigned before the first record: consuming keeps pace with producing
        wait_until(lambda: served.get("/healthz").status_code == 200, timeout=60, what="assigned")
        sender.start()
        wait_until(lambda: committed() >= 100, timeout=60, what="mid-stream")
    finally:
        served.kill()
    at_kill = committed()
    sender.join(120)
    assert not sender.is_alive()
    producer.close()
    assert 0 < at_kill < len(envelopes)
    assert password_absent(served.stderr(), kafka_sasl.password)

    try:
        restart_until_drained(config, tmp_path, "keyvault", lambda: committed() == len(envelopes))
    finally:
        watcher.close()
    events = stored_ids(tmp_path)
    assert len(events) == len(set(events))
    assert set(events) == oracle_ids(tmp_path / "oracle", "azure", envelopes)
    assert len(events) == len(KEYVAULT) * len(envelopes)


def password_absent(log: str, password: str) -> bool:
    key = password.rsplit("SharedAccessKey=", 1)[-1]
    return password not in log and key not in log
