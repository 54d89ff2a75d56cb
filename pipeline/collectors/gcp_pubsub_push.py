"""A Pub/Sub push subscription's endpoint, for Cloud Audit Logs routed to Pub/Sub by a log
sink: each push is `{"message": {"data": <base64 LogEntry>, "messageId", "publishTime",
"attributes"}, "subscription"}` (or, with payload unwrapping on, the LogEntry itself).

The LogEntry is spooled as one line, its own bytes (a repeated key stays visible to the
parser, which notes it on the event); the 2xx that acks the message is sent only
after that. Pub/Sub delivers at least once, so a message may come twice: the store keeps
one event per `insertId` (the GCP event id), so a redelivery stores nothing new.

A push that is not a base64 JSON LogEntry is a dead letter and answered 400. Pub/Sub
redelivers on 400 as on 5xx, until the message expires: give the subscription a
dead-letter topic (`--dead-letter-topic`, `--max-delivery-attempts 5`) so a bad message
stops coming back; its copy here is already a dead letter.
"""

from __future__ import annotations

import base64
import binascii

import orjson
from starlette.requests import Request

from pipeline.collectors.base import Collector, Intake
from pipeline.collectors.google_jwt import Jwks, Refused, Verifier
from pipeline.collectors.rawjson import one_line
from pipeline.collectors.receiving import (
    Bad,
    Check,
    Endpoint,
    Framed,
    HttpCollector,
    endpoint_of,
)
from pipeline.collectors.settings import GcpPubsubPush

FORMAT = "gcp"
_LOG_ENTRY_KEYS = ("protoPayload", "insertId", "logName")


def frame(body: bytes) -> Framed:
    """The pushed message's LogEntry as one line."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _bad(f"not JSON: {exc}", body)
    if not isinstance(doc, dict):
        return _bad("not a Pub/Sub push (a JSON object with `message`)", body)
    if "message" not in doc:
        if any(key in doc for key in _LOG_ENTRY_KEYS):  # payload unwrapping
            return Framed(lines=[one_line(body)])
        return _bad("not a Pub/Sub push (a JSON object with `message`)", body)
    message = doc["message"]
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str) or not data:
        return _bad("the pushed message has no `data`", body)
    try:
        raw = base64.b64decode(data, validate=True)
        entry = orjson.loads(raw)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        return _bad("the message's `data` is not base64 JSON", body)
    if not isinstance(entry, dict):
        return _bad("the message's `data` is not a LogEntry (a JSON object)", body)
    return Framed(lines=[one_line(raw)])


def _bad(reason: str, body: bytes) -> Framed:
    return Framed(bad=[Bad("", reason, body)])


def jwt_check(verifier: Verifier) -> Check:
    """The request check for `audience`: a bearer JWT that `verifier` accepts."""

    def check(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "a Google-signed bearer JWT is required"
        try:
            verifier.verify(token.strip())
        except Refused as exc:
            return str(exc)
        return None

    return check


def make(settings: GcpPubsubPush, intake: Intake) -> Collector:
    """The push endpoint, not yet started (the token is read by `start`)."""

    def endpoint() -> Endpoint:
        if settings.audience is not None and settings.jwks_file is not None:
            verifier = Verifier(
                Jwks(settings.jwks_file), settings.audience, settings.service_account_email
            )
            return endpoint_of(settings, intake, frame, jwt_check(verifier))
        return endpoint_of(settings, intake, frame)

    return HttpCollector(settings.label, settings.listen, endpoint, FORMAT)
