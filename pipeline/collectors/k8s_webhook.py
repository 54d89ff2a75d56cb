"""The Kubernetes audit webhook backend: the API server POSTs `audit.k8s.io/v1` `EventList`
batches (batch mode, up to 400 events a request by default) or single `Event`s (blocking
mode) to `listen`; `docs/k8s-audit-webhook.kubeconfig` is what a cluster admin points it at.

Each event is spooled as its own line (not the list as one), so an event the parser cannot
read is a dead letter of its own and a large batch never makes one huge spool line. The
API server drops events when its buffer fills, so the answer comes as soon as the batch is
durable, before any parsing or storing.

`requestObject` and `responseObject` are dropped before spooling: the parser never reads
them, and at the `Request`/`RequestResponse` levels they hold a Secret's values, which
must not reach the disk even for the spool's short life.

Events are re-serialized compactly (orjson), except in a body that repeats a JSON key:
there each event is cut from the body's own bytes (`rawjson`), so the parser sees the
repeat and notes it on the event, as it does for the same event read from a file.
"""

from __future__ import annotations

import orjson

from pipeline.collectors.base import Collector, Intake
from pipeline.collectors.rawjson import elements, value_of, without
from pipeline.collectors.receiving import Bad, Endpoint, Framed, HttpCollector, endpoint_of
from pipeline.collectors.settings import K8sWebhook
from pipeline.jsonscan import skip_ws
from pipeline.sources.base import _may_repeat_keys  # the parsers' own test, so both agree

FORMAT = "k8s"
_BODIES = frozenset({"requestObject", "responseObject"})


def _line(event: dict[str, object]) -> bytes:
    if any(key in event for key in _BODIES):
        event = {k: v for k, v in event.items() if k not in _BODIES}
    return orjson.dumps(event)


def frame(body: bytes) -> Framed:
    """One compact line per event of an `EventList`, or the one `Event`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Framed(bad=[Bad("", f"not JSON: {exc}", body)])
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in ("Event", "EventList"):
        return Framed(bad=[Bad("", "not an audit.k8s.io EventList or Event", body)])
    top = skip_ws(body, 0)
    raw = _may_repeat_keys(body, doc)  # rare: cut events from the body's bytes
    if kind == "Event":
        return Framed(lines=[without(body, top, _BODIES) if raw else _line(doc)])
    items = doc.get("items") or []
    if not isinstance(items, list):
        return Framed(bad=[Bad("", "an EventList whose items is not a list", body)])
    starts = _item_starts(body, top) if raw and items else []
    framed = Framed()
    for i, item in enumerate(items):
        if isinstance(item, dict):
            framed.lines.append(without(body, starts[i], _BODIES) if starts else _line(item))
        else:
            framed.bad.append(Bad(f"items[{i}]", "not an audit Event object", orjson.dumps(item)))
    return framed


def _item_starts(body: bytes, top: int) -> list[int]:
    """Where each element of the list's `items` (the last, as decoders take) starts."""
    at = value_of(body, top, "items")
    return [start for start, _ in elements(body, at)] if at is not None else []


def make(settings: K8sWebhook, intake: Intake) -> Collector:
    """The webhook collector, not yet started (the token is read by `start`)."""

    def endpoint() -> Endpoint:
        return endpoint_of(settings, intake, frame)

    return HttpCollector(settings.label, settings.listen, endpoint, FORMAT)
