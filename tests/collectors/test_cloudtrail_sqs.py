"""The cloudtrail_sqs collector against moto's real S3 and SQS server on 127.0.0.1 (started by
scripts/services): every notification shape spools what ingesting the objects directly
stores, a message is deleted only once its records are spooled, and what cannot be read
becomes a dead letter naming s3://bucket/key."""

from __future__ import annotations

import errno
import gzip
import http.server
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from waiting import spooled, wait_until

from pipeline.collectors import make_collector
from pipeline.collectors.base import Intake
from pipeline.collectors.cloudtrail_notice import (
    Event,
    Objects,
    S3Key,
    S3TestEvent,
    Unknown,
    read_notice,
)
from pipeline.collectors.cloudtrail_sqs import CloudtrailSqsCollector
from pipeline.collectors.settings import CloudtrailSqs
from pipeline.collectors.spool import Spool
from pipeline.errors import ConfigError
from pipeline.ingest import Ingestor
from pipeline.store.duckdb import DuckDBStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws_cloudtrail"
GENERATED = FIXTURES / "secretwatch__generated" / "generated_records.json"
INVICTUS = (
    FIXTURES
    / "invictus-ir__aws_dataset"
    / "218007301253_CloudTrail_us-east-1_20230710T1205Z_nx9Yx1FyJdBaTqKj.json"
)
EVENTBRIDGE = FIXTURES / "secretwatch__generated" / "eventbridge_get_secret_value.json"
PREFIX = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/02/"


def s3_event(bucket: str, key: str) -> bytes:
    """An S3 event notification as S3 writes it: the key URL-encoded, '+' for a space."""
    encoded = urllib.parse.quote_plus(key, safe="/")
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded, "size": 1}},
    }
    return orjson.dumps({"Records": [record]})


def cloudtrail_notice(bucket: str, *keys: str, sns: bool) -> bytes:
    notice = orjson.dumps({"s3Bucket": bucket, "s3ObjectKey": list(keys)})
    if not sns:
        return notice
    return orjson.dumps(
        {"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": notice.decode()}
    )


# ---------------------------------------------------------------- shapes, no server


def test_every_notification_shape_is_read() -> None:
    assert read_notice(s3_event("b", "a b/c+d.json.gz")) == Objects(
        (S3Key("b", "a b/c+d.json.gz"),)
    )
    raw = cloudtrail_notice("b", "k1", "k2", sns=False)
    assert read_notice(raw) == Objects((S3Key("b", "k1"), S3Key("b", "k2")))
    assert read_notice(cloudtrail_notice("b", "k1", sns=True)) == Objects((S3Key("b", "k1"),))
    event = read_notice(EVENTBRIDGE.read_bytes())
    assert isinstance(event, Event)
    assert b"\n" not in event.line and orjson.loads(event.line) == orjson.loads(
        EVENTBRIDGE.read_bytes()
    )
    test_event = b'{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"x","Bucket":"b"}'
    assert read_notice(test_event) == S3TestEvent()
    sns_test = orjson.dumps({"Type": "Notification", "Message": test_event.decode()})
    assert read_notice(sns_test) == S3TestEvent()
    deleted = orjson.loads(s3_event("b", "k"))
    deleted["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert read_notice(orjson.dumps(deleted)) == Objects(())
    for junk in (b"not json", b"[1]", b'{"hello": 1}', b'{"Records": [{"eventSource": "x"}]}'):
        assert isinstance(read_notice(junk), Unknown), junk


# ---------------------------------------------------------------- against moto


@dataclass
class Aws:
    endpoint: str
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def send(self, body: bytes) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body.decode())

    def queued(self) -> int:
        """Messages still on the queue, visible or in flight (not deleted)."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def aws(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    name = f"trail-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return Aws(aws_endpoint, s3, sqs, name, queue_url)


@pytest.fixture
def start(
    aws: Aws, tmp_path: Path
) -> Iterator[Callable[..., tuple[CloudtrailSqsCollector, Intake]]]:
    made: list[CloudtrailSqsCollector] = []

    def run(spool: Spool | None = None, **extra: object) -> tuple[CloudtrailSqsCollector, Intake]:
        settings = CloudtrailSqs.model_validate(
            {
                "type": "cloudtrail_sqs",
                "queue_url": aws.queue_url,
                "endpoint_url": aws.endpoint,
                "wait_seconds": 1,
                "visibility_timeout": 30,
                **extra,
            }
        )
        intake = Intake(settings.label, spool or Spool(tmp_path / f"spool{len(made)}"))
        collector = make_collector(settings, intake)
        assert isinstance(collector, CloudtrailSqsCollector)
        collector.start()
        made.append(collector)
        return collector, intake

    yield run
    for collector in made:
        collector.stop()


def ingest(tmp_path: Path, name: str, paths: list[Path]) -> tuple[set[str], int]:
    """The event ids and dead letters a store holds after ingesting `paths` as aws."""
    with DuckDBStore(tmp_path / f"{name}.duckdb") as store:
        Ingestor(store, fmt="aws").ingest([str(p) for p in paths])
        return set(store.events()["event_id"]), len(store.dead_letters())


def test_every_shape_spools_what_direct_ingest_stores_and_deletes_after(
    aws: Aws, start: Callable[..., tuple[CloudtrailSqsCollector, Intake]], tmp_path: Path
) -> None:
    spaced = PREFIX + "111122223333_CloudTrail_us-east-1_20260302T0940Z_a b.json.gz"
    plain = PREFIX + "218007301253_CloudTrail_us-east-1_20230710T1205Z_nx9Yx1FyJdBaTqKj.json"
    digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/03/02/digest.json.gz"
    aws.put(spaced, gzip.compress(GENERATED.read_bytes()))  # CloudTrail gzips its objects
    aws.put(plain, INVICTUS.read_bytes())
    aws.put(digest, gzip.compress(b'{"not": "records"}'))
    aws.send(s3_event(aws.bucket, spaced))
    aws.send(cloudtrail_notice(aws.bucket, plain, digest, sns=True))
    aws.send(cloudtrail_notice(aws.bucket, spaced, sns=False))  # the same object again
    aws.send(EVENTBRIDGE.read_bytes())
    aws.send(b'{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}')
    assert aws.queued() == 5

    collector, intake = start()
    assert collector.listening
    wait_until(lambda: aws.queued() == 0)
    collector.stop()

    generated = orjson.loads(GENERATED.read_bytes())["Records"]
    invictus = orjson.loads(INVICTUS.read_bytes())["Records"]
    lines = spooled(intake.spool)
    assert len(lines) == 2 * len(generated) + len(invictus) + 1  # a line per record
    for record in generated:  # announced twice, spooled twice, compact, in any order
        assert lines.count(orjson.dumps(record)) == 2
    for record in invictus:
        assert lines.count(orjson.dumps(record)) == 1
    assert intake.take_dead() == []  # the digest was skipped, the test event dropped

    from_spool, dead = ingest(tmp_path, "spool", [intake.spool.path])
    direct, _ = ingest(tmp_path, "direct", [GENERATED, INVICTUS, EVENTBRIDGE])
    assert dead == 0
    assert len(direct) == 12 + 4 + 1  # invictus: DescribeSecret and 3 KMS calls made for it
    assert from_spool == direct  # the object announced twice is stored once


def test_unreadable_objects_are_dead_letters_naming_bucket_and_key(
    aws: Aws, start: Callable[..., tuple[CloudtrailSqsCollector, Intake]]
) -> None:
    aws.put(PREFIX + "not-json.json.gz", gzip.compress(b"<html>no</html>"))
    aws.put(PREFIX + "no-records.json", b'{"records": "elsewhere"}')
    aws.put(PREFIX + "big.json", b'{"Records": [' + b'{"a": 1},' * 3000 + b'{"a": 1}]}')
    aws.put(PREFIX + "good.json", GENERATED.read_bytes())
    keys = ["missing.json.gz", "not-json.json.gz", "no-records.json", "big.json", "good.json"]
    aws.send(cloudtrail_notice(aws.bucket, *(PREFIX + k for k in keys), sns=True))
    aws.send(b'{"Secret": "hunter2", "unrelated": true}')

    collector, intake = start(max_object_bytes=20_000)
    wait_until(lambda: aws.queued() == 0)  # nothing to come back for: deleted
    collector.stop()
    assert len(spooled(intake.spool)) == 12  # the good object in the same message
    dead = {d.file: d for d in intake.take_dead()}
    where = f"collector cloudtrail_sqs: s3://{aws.bucket}/{PREFIX}"
    assert "NoSuchKey" in dead[where + "missing.json.gz"].reason
    assert "not JSON" in dead[where + "not-json.json.gz"].reason
    assert 'no "Records" list' in dead[where + "no-records.json"].reason
    assert "max_object_bytes" in dead[where + "big.json"].reason
    (message,) = [d for d in dead.values() if "sqs message" in d.file]
    assert "not an S3, CloudTrail (SNS) or EventBridge notification" in message.reason
    assert b"hunter2" not in message.raw  # redacted like any dead letter


class FlakyS3:
    """A real HTTP proxy in front of moto that answers S3 GETs with 503 SlowDown while
    `failing` is set: S3 having a bad minute."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing = threading.Event()
        self.refused = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "GET" and proxy.failing.is_set():
                    proxy.refused += 1
                    error = b"<Error><Code>SlowDown</Code><Message>Reduce</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(  # noqa: S310 - the local moto URL
                    proxy.upstream + self.path, data=body or None, method=self.command
                )
                for k, v in headers.items():
                    request.add_header(k, v)
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                        status, data, answered = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as exc:
                    status, data, answered = exc.code, exc.read(), exc.headers
                self.send_response(status)
                for k, v in answered.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_transient_s3_failure_leaves_the_message_for_redelivery(
    aws: Aws, start: Callable[..., tuple[CloudtrailSqsCollector, Intake]]
) -> None:
    key = PREFIX + "slow.json"
    aws.put(key, GENERATED.read_bytes())
    aws.send(s3_event(aws.bucket, key))
    flaky = FlakyS3(aws.endpoint)
    flaky.failing.set()
    try:
        collector, intake = start(endpoint_url=flaky.url, visibility_timeout=1)
        wait_until(lambda: flaky.refused >= 6)  # delivered at least twice, retried each time
        assert aws.queued() == 1  # never deleted
        assert intake.counts.records == 0 and intake.take_dead() == []
        flaky.failing.clear()
        wait_until(lambda: aws.queued() == 0)
        collector.stop()
    finally:
        flaky.close()
    assert len(spooled(intake.spool)) == 12


class FullDisk(Spool):
    """A spool on a full disk: every append fails."""

    def append(self, lines: Sequence[bytes], sync: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_spool_that_cannot_be_written_leaves_the_message(
    aws: Aws,
    start: Callable[..., tuple[CloudtrailSqsCollector, Intake]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = PREFIX + "a.json"
    aws.put(key, GENERATED.read_bytes())
    aws.send(s3_event(aws.bucket, key))
    first, _ = start(spool=FullDisk(tmp_path / "full"), visibility_timeout=1)

    def refused_twice() -> bool:
        left = [r for r in caplog.records if "left on the queue for redelivery" in r.message]
        return len(left) >= 2 and all("No space left" in r.message for r in left)

    wait_until(refused_twice)  # received again after its visibility timeout, failed again
    first.stop()
    assert aws.queued() == 1  # never deleted
    second, intake = start(visibility_timeout=1)
    wait_until(lambda: aws.queued() == 0)
    second.stop()
    assert len(spooled(intake.spool)) == 12


class SlowDisk(Spool):
    """A spool whose first append waits until `go` is set."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.writing, self.go = threading.Event(), threading.Event()

    def append(self, lines: Sequence[bytes], sync: bool = True) -> None:
        self.writing.set()
        if not self.go.wait(20):
            raise OSError(errno.EIO, "not released")
        super().append(lines)


def test_stopping_finishes_the_message_in_hand_and_releases_the_rest(
    aws: Aws, start: Callable[..., tuple[CloudtrailSqsCollector, Intake]], tmp_path: Path
) -> None:
    key = PREFIX + "a.json"
    aws.put(key, GENERATED.read_bytes())
    for _ in range(5):
        aws.send(s3_event(aws.bucket, key))
    slow = SlowDisk(tmp_path / "slow")
    collector, intake = start(spool=slow, max_messages=10, visibility_timeout=300)
    assert slow.writing.wait(20)  # the first message is being spooled
    stopping = threading.Thread(target=collector.stop)
    stopping.start()
    wait_until(lambda: collector._stop.is_set())
    slow.go.set()
    stopping.join(30)
    assert not stopping.is_alive()
    assert len(spooled(intake.spool)) == 12  # the message in hand, finished
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=aws.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    # every other message received in that batch is visible again at once, not in 300 s
    assert int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0
    assert int(attrs["ApproximateNumberOfMessages"]) == 4
    again = aws.sqs.receive_message(
        QueueUrl=aws.queue_url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    # received by the collector in the same batch (then released), and now by this check
    assert sorted(int(m["Attributes"]["ApproximateReceiveCount"]) for m in again) == [2] * 4


def test_a_queue_that_does_not_exist_is_a_clear_error_at_start(aws: Aws, tmp_path: Path) -> None:
    settings = CloudtrailSqs.model_validate(
        {
            "type": "cloudtrail_sqs",
            "queue_url": f"{aws.endpoint}/123456789012/no-such-queue-{uuid.uuid4().hex[:8]}",
            "endpoint_url": aws.endpoint,
        }
    )
    collector = make_collector(settings, Intake("cloudtrail_sqs", Spool(tmp_path / "s")))
    with pytest.raises(ConfigError, match="no-such-queue.*cannot be read"):
        collector.start()
    assert not collector.listening


def test_the_example_config_makes_this_collector(tmp_path: Path) -> None:
    from pipeline.config import load_config

    root = Path(__file__).parents[2]
    (settings,) = load_config(root / "config" / "examples" / "serve-aws.yaml").collectors
    assert isinstance(settings, CloudtrailSqs)
    collector = make_collector(settings, Intake(settings.label, Spool(tmp_path / "s")))
    assert isinstance(collector, CloudtrailSqsCollector)
    assert not collector.listening  # not started: nothing is asked of AWS
