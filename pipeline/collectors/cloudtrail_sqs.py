"""The cloudtrail_sqs collector: CloudTrail objects in S3, announced on an SQS queue.

A daemon thread long-polls the queue. Each message announces S3 objects (an S3 event or
CloudTrail's SNS notification), carries an EventBridge event, or is S3's test event
(`cloudtrail_notice`). Announced objects are fetched (at most `max_object_bytes`,
gunzipped), and every record of their `{"Records": [...]}` is spooled as its own compact
line: the spool's reader then names one record, not one object of up to thousands, in a
dead letter, and no line approaches the follower's line limit however large the object.

A message is deleted only once everything it announced is spooled (`intake.accept` has
returned) or turned into a dead letter: an object that is gone (404) or is not a
CloudTrail log file is rejected naming s3://bucket/key, and so is a message that
announces nothing this collector reads. Anything that may pass (S3 or SQS 5xx,
throttling, a denied read, a network error, a spool that cannot be written) leaves the
message on the queue, to be delivered again when its visibility timeout ends. Delivery is
therefore at least once; the store keeps each `event_id` once.

Digest files (`CloudTrail-Digest/`) are skipped: they hold hashes, not events. Stopping
finishes the message in hand and makes the rest of its batch visible again at once.
"""

from __future__ import annotations

import logging
import threading
import zlib
from typing import TYPE_CHECKING

import boto3
import orjson
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.collectors.base import Intake
from pipeline.collectors.cloudtrail_notice import (
    Event,
    Objects,
    S3Key,
    S3TestEvent,
    Unknown,
    is_digest,
    read_notice,
)
from pipeline.collectors.settings import CloudtrailSqs
from pipeline.errors import ConfigError
from pipeline.errortext import clean_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

log = logging.getLogger(__name__)

GONE = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound", "InvalidObjectState"})
ERROR_PAUSE_SECONDS = 5.0  # after a failed receive, before the next
RAW_BYTES = 4096  # of an unreadable object, kept (redacted) in its dead letter


class Transient(Exception):
    """S3, SQS or the spool failed in a way that may pass: leave the message queued."""


class CloudtrailSqsCollector:
    def __init__(
        self, settings: CloudtrailSqs, intake: Intake, error_pause: float = ERROR_PAUSE_SECONDS
    ) -> None:
        self.name = settings.label
        self.settings = settings
        self.intake = intake
        self.error_pause = error_pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = False

    _sqs: SQSClient  # made by start()
    _s3: S3Client

    @property
    def address(self) -> str:
        """What it reads, for the service's startup message."""
        return f"polls {self.settings.queue_url}"

    @property
    def listening(self) -> bool:
        return self._listening and self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Make the clients and check that the queue answers; ConfigError if it does not."""
        s = self.settings
        config = BotoConfig(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=s.wait_seconds + 20,  # a long poll holds the request that long
            s3={"addressing_style": "path"} if s.endpoint_url else None,
        )
        try:
            session = boto3.session.Session(region_name=s.region)
            sqs = session.client("sqs", endpoint_url=s.endpoint_url, config=config)
            self._s3 = session.client("s3", endpoint_url=s.endpoint_url, config=config)
            sqs.get_queue_attributes(QueueUrl=s.queue_url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError, ValueError) as exc:
            raise ConfigError(
                f"collector {self.name}: the queue {s.queue_url} cannot be read: {_why(exc)}"
            ) from None
        self._sqs = sqs
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"collector-{self.name}")
        self._thread.daemon = True
        self._listening = True
        self._thread.start()

    def stop(self) -> None:
        """Stop after the message in hand; a long poll in flight ends within wait_seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.wait_seconds + 30)
        self._listening = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._receive()
            except (ClientError, BotoCoreError) as exc:
                log.warning("collector %s: receiving from SQS failed: %s", self.name, _why(exc))
                self._stop.wait(self.error_pause)
                continue
            for at, message in enumerate(messages):
                if self._stop.is_set():
                    self._release(messages[at:])
                    break
                self._handle(message)

    def _receive(self) -> list[MessageTypeDef]:
        s = self.settings
        answer = self._sqs.receive_message(
            QueueUrl=s.queue_url,
            MaxNumberOfMessages=s.max_messages,
            WaitTimeSeconds=s.wait_seconds,
            VisibilityTimeout=s.visibility_timeout,
        )
        return answer.get("Messages", [])

    def _handle(self, message: MessageTypeDef) -> None:
        body = message.get("Body", "").encode()
        where = f"sqs message {message.get('MessageId', '?')}"
        notice = read_notice(body)
        try:
            if isinstance(notice, Unknown):
                self.intake.reject(where, notice.reason, body, "aws")
            elif isinstance(notice, Event):
                self._accept([notice.line])
            elif isinstance(notice, Objects):
                for key in notice.keys:
                    if not is_digest(key.key):
                        self._accept(self._records(key))
            elif isinstance(notice, S3TestEvent):
                pass  # S3 checking that notifications arrive
        except Transient as exc:
            log.warning(
                "collector %s: %s left on the queue for redelivery: %s", self.name, where, exc
            )
            return
        except Exception:  # a bug must not end the thread; the message comes back
            log.exception("collector %s: %s left on the queue for redelivery", self.name, where)
            return
        self._delete(message)

    def _accept(self, lines: list[bytes]) -> None:
        try:
            self.intake.accept(lines)
        except (OSError, ValueError) as exc:
            raise Transient(f"the spool cannot be written: {exc}") from None

    def _records(self, key: S3Key) -> list[bytes]:
        """The object's records as compact lines; [] when it became a dead letter."""
        data = self._fetch(key)
        if data is None:
            return []
        if data[:2] == b"\x1f\x8b":
            try:
                data = _gunzip(data, self.settings.max_object_bytes)
            except ValueError as exc:
                self.intake.reject(str(key), str(exc), b"", "aws")
                return []
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.intake.reject(str(key), f"not JSON: {exc}", data[:RAW_BYTES], "aws")
            return []
        records = doc.get("Records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            reason = 'not a CloudTrail log file (no "Records" list)'
            self.intake.reject(str(key), reason, data[:RAW_BYTES], "aws")
            return []
        return [orjson.dumps(record) for record in records]

    def _fetch(self, key: S3Key) -> bytes | None:
        limit = self.settings.max_object_bytes
        try:
            answer = self._s3.get_object(Bucket=key.bucket, Key=key.key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in GONE or status == 404:
                self.intake.reject(str(key), f"the announced object cannot be read: {code}", b"")
                return None
            raise Transient(f"{key}: {_why(exc)}") from None
        except BotoCoreError as exc:
            raise Transient(f"{key}: {_why(exc)}") from None
        body = answer["Body"]
        try:
            size = answer.get("ContentLength", 0)
            if size > limit:
                reason = f"object of {size:,} bytes, over max_object_bytes ({limit:,})"
                self.intake.reject(str(key), reason, b"", "aws")
                return None
            data = body.read(limit + 1)
        except (BotoCoreError, OSError) as exc:
            raise Transient(f"{key}: reading the object failed: {_why(exc)}") from None
        finally:
            body.close()
        if len(data) > limit:
            reason = f"object over max_object_bytes ({limit:,})"
            self.intake.reject(str(key), reason, b"", "aws")
            return None
        return data

    def _release(self, messages: list[MessageTypeDef]) -> None:
        """Stopping: make the messages not yet handled visible again at once, for the next
        start (or another reader) rather than after their visibility timeout."""
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        try:
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.settings.queue_url, Entries=entries
            )
        except (ClientError, BotoCoreError) as exc:  # they come back after the timeout
            log.info("collector %s: releasing messages failed: %s", self.name, _why(exc))

    def _delete(self, message: MessageTypeDef) -> None:
        try:
            self._sqs.delete_message(
                QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        except (ClientError, BotoCoreError) as exc:  # delivered again; the store dedupes
            log.warning("collector %s: deleting a message failed: %s", self.name, _why(exc))


def _gunzip(data: bytes, limit: int) -> bytes:
    """Gunzip at most `limit` bytes (ValueError past it or on a broken stream)."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"not valid gzip: {exc}") from None
    if len(out) > limit:
        raise ValueError(f"gunzipped object over max_object_bytes ({limit:,})")
    if not inflate.eof:
        raise ValueError("a gzip stream cut short")
    return out


def _why(exc: BaseException) -> str:
    return clean_error(str(exc)) or type(exc).__name__


def make(settings: CloudtrailSqs, intake: Intake) -> CloudtrailSqsCollector:
    return CloudtrailSqsCollector(settings, intake)
