"""What one SQS message of the cloudtrail_sqs collector announces, from its body alone.

CloudTrail delivery reaches a queue in four shapes: an S3 event notification (keys
URL-encoded, `+` for a space), CloudTrail's own SNS notification (`s3Bucket` and a list
of `s3ObjectKey`s, SNS-wrapped or raw), an EventBridge event (the CloudTrail record itself,
in `detail`), and S3's `s3:TestEvent` when a notification is set up. Reading the shape is
kept apart from S3 and SQS so that every shape is checked without a server.

>>> read_notice(b'{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}')
S3TestEvent()
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import unquote_plus

import orjson

DIGEST_FOLDER = "CloudTrail-Digest/"


class S3Key(NamedTuple):
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class Objects(NamedTuple):
    """S3 objects to fetch, in the order announced (possibly none: a deletion, say)."""

    keys: tuple[S3Key, ...]


class Event(NamedTuple):
    """An EventBridge event: one compact line to spool as it is."""

    line: bytes


class S3TestEvent(NamedTuple):
    """S3's check that the notification works: nothing to spool."""


class Unknown(NamedTuple):
    """A body that announces nothing this collector reads: a dead letter."""

    reason: str


Notice = Objects | Event | S3TestEvent | Unknown


def read_notice(body: bytes) -> Notice:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Unknown(f"the message is not JSON: {exc}")
    return _notice(doc, wrapped=False)


def _notice(doc: object, wrapped: bool) -> Notice:
    if not isinstance(doc, dict):
        return Unknown("the message is not a JSON object")
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str) and not wrapped:
        try:  # SNS delivery without raw message delivery: the notification is a string inside
            inner = orjson.loads(doc["Message"])
        except orjson.JSONDecodeError as exc:
            return Unknown(f"the SNS notification's Message is not JSON: {exc}")
        return _notice(inner, wrapped=True)
    if doc.get("Event") == "s3:TestEvent":
        return S3TestEvent()
    if isinstance(doc.get("s3Bucket"), str) and isinstance(doc.get("s3ObjectKey"), list):
        bucket = doc["s3Bucket"]  # CloudTrail's notification: keys are not URL-encoded
        if not all(isinstance(k, str) for k in doc["s3ObjectKey"]):
            return Unknown("s3ObjectKey holds something other than key names")
        return Objects(tuple(S3Key(bucket, k) for k in doc["s3ObjectKey"]))
    if "detail-type" in doc and isinstance(doc.get("detail"), dict):
        return Event(orjson.dumps(doc))
    if isinstance(doc.get("Records"), list):
        return _s3_event(doc["Records"])
    return Unknown("not an S3, CloudTrail (SNS) or EventBridge notification")


def _s3_event(records: list[Any]) -> Notice:
    keys: list[S3Key] = []
    s3 = 0
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            continue
        s3 += 1
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue  # a deletion or a restore announces nothing new to read
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = record["s3"]["object"]["key"]
        except (KeyError, TypeError):
            return Unknown("an S3 event record without s3.bucket.name and s3.object.key")
        if not isinstance(bucket, str) or not isinstance(key, str):
            return Unknown("an S3 event record whose bucket or key is not a string")
        keys.append(S3Key(bucket, unquote_plus(key)))
    if not s3:
        return Unknown("Records holds no S3 event (eventSource aws:s3)")
    return Objects(tuple(keys))


def is_digest(key: str) -> bool:
    """A CloudTrail digest file (AWSLogs/<account>/CloudTrail-Digest/...): it lists hashes,
    not events; verifying the chain is another job.

    >>> is_digest("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/03/02/x.json.gz")
    True
    >>> is_digest("AWSLogs/111122223333/CloudTrail/us-east-1/2026/03/02/x.json.gz")
    False
    """
    return key.startswith(DIGEST_FOLDER) or f"/{DIGEST_FOLDER}" in key
