"""The events topic's record formats (events, progress marks): what the normalize stage
writes, the detect stage reads (no servers needed)."""

from __future__ import annotations

import time

import orjson
import pytest

from pipeline.bus.judge_stage import decode_record
from pipeline.bus.normalize_stage import events_value, marks_value
from pipeline.record import EventRow


def row(event_id: str, identity: str = "orders/orders-api") -> EventRow:
    return EventRow(
        event_id,
        1_700_000_000_000_000,
        "vault",
        "vault",
        identity,
        "service",
        "secret/data/db",
        "read",
        "read",
        "success",
        "10.0.0.7",
        None,
        None,
        None,
        None,
    )


def as_object(event_id: str) -> dict:
    """One event as the events topic writes it."""
    return orjson.loads(events_value([row(event_id)]))[0]


def test_a_batch_reads_back_as_the_same_events_in_order():
    rows = [row("a"), row("b"), row("c")]
    assert decode_record(events_value(rows)) == rows


def test_a_single_event_object_is_read_as_before_batches():
    assert decode_record(orjson.dumps(as_object("a"))) == [row("a")]


def test_progress_marks_read_back_with_when_they_were_sent():
    before = time.time()
    sent, marks = decode_record(marks_value({"raw.vault/0": 5, "raw.aws/1": None}, "m1"))
    assert marks == {"raw.vault/0": 5, "raw.aws/1": None}
    assert before <= sent <= time.time()  # stamped when made, whatever the machine's pace


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b'[{"event_id": "a"}]',  # fields missing
        orjson.dumps([{**as_object("a"), "ts_us": "soon"}]),
        orjson.dumps([{**as_object("a"), "source": "ftp"}]),
        b"[1, 2]",
        b'{"marks": ["raw.vault/0"]}',
        b'{"marks": {"raw.vault/0": "noon"}, "at": 1.0}',
    ],
)
def test_anything_else_is_refused_whole(value: bytes):
    with pytest.raises((ValueError, TypeError, KeyError)):
        decode_record(value)
