"""Newline-delimited JSON over HTTP POST (optionally gzip): for audit streams that speak
HTTP, such as HCP Vault audit log streaming to a generic HTTP sink, log shippers, or
Fluent Bit's `http` output with `format json_lines`.

Each non-empty line is spooled byte for byte (so the stored events are those of ingesting
the same lines from a file), in the settings' `format` (None: recognized per stream, as
`ingest` does). A line that is not JSON is refused at the door: its dead letter names the
collector, the request and the line, which says more than a spool line number would; a
body of nothing else is answered 400, a body with good lines 200 (a retry would only
repeat the bad ones). At most `MAX_BAD_LINES` dead letters are kept per request, so a
body of garbage cannot fill memory with them.
"""

from __future__ import annotations

import orjson

from pipeline.collectors.base import Collector, Intake
from pipeline.collectors.receiving import Bad, Endpoint, Framed, HttpCollector, endpoint_of
from pipeline.collectors.settings import HttpNdjson

MAX_BAD_LINES = 100


def frame(body: bytes) -> Framed:
    """The body's non-empty lines, each checked to be one JSON value."""
    framed = Framed()
    dropped = 0
    for number, raw in enumerate(body.split(b"\n"), 1):
        line = raw.strip(b" \t\r")
        if not line:
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if len(framed.bad) < MAX_BAD_LINES:
                framed.bad.append(Bad(f"line {number}", f"not JSON: {exc}", line))
            else:
                dropped += 1
            continue
        framed.lines.append(line)
    if dropped:
        reason = f"{dropped} more lines are not JSON (dead letters kept for {MAX_BAD_LINES})"
        framed.bad.append(Bad("", reason, b""))
    return framed


def make(settings: HttpNdjson, intake: Intake) -> Collector:
    """The NDJSON collector, not yet started (the token is read by `start`)."""

    def endpoint() -> Endpoint:
        return endpoint_of(settings, intake, frame)

    return HttpCollector(settings.label, settings.listen, endpoint, settings.format)
