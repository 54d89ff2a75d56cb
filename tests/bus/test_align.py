"""Progress marks as the detect stage keeps them, and the normalize stage's held events
(no servers needed; the stages run against real Kafka in test_run.py)."""

from __future__ import annotations

import pytest

from pipeline.bus import align
from pipeline.bus.align import RawMarks
from pipeline.bus.normalize_stage import _Partition
from pipeline.record import EventRow
from pipeline.sources import new_parser


def test_the_slowest_raw_partition_bounds_the_clock():
    marks = RawMarks()
    marks.update(0, 1.0, {"raw.vault/0": 500, "raw.vault/1": 300})
    marks.update(1, 1.0, {"raw.vault/0": 500, "raw.vault/1": 300})
    assert marks.floor() == 300


def test_caught_up_partitions_do_not_hold_it_back():
    marks = RawMarks()
    marks.update(0, 1.0, {"raw.vault/0": 500, "raw.vault/1": None})
    assert marks.floor() == 500
    marks.update(0, 2.0, {"raw.vault/0": None, "raw.vault/1": None})
    assert marks.floor() is None


def test_an_older_copy_arriving_late_does_not_win():
    """The same marks go to every events partition; a later read of an earlier copy on
    the same partition (sent before) must not move the mark back."""
    marks = RawMarks()
    marks.update(0, 2.0, {"raw.vault/0": 900})
    marks.update(0, 1.0, {"raw.vault/0": 100})
    assert marks.floor() == 900


def test_a_revoked_partition_takes_its_marks_along():
    marks = RawMarks()
    marks.update(0, 1.0, {"raw.vault/0": 100})
    marks.update(1, 1.0, {"raw.vault/0": 700})
    marks.forget([0])
    assert marks.floor() == 700


def test_a_mark_nobody_renews_stops_holding_detection_back(monkeypatch: pytest.MonkeyPatch):
    now = [1000.0]
    monkeypatch.setattr(align.time, "monotonic", lambda: now[0])
    marks = RawMarks()
    marks.update(0, 1.0, {"raw.vault/0": 100})
    marks.update(0, 1.0, {"raw.aws/0": 800})
    now[0] += align.MARKS_TTL_SECONDS / 2
    marks.update(0, 2.0, {"raw.aws/0": 900})
    assert marks.floor() == 100
    now[0] += align.MARKS_TTL_SECONDS / 2 + 1
    assert marks.floor() == 900


def event(event_id: str, ts_us: int) -> EventRow:
    return EventRow(
        event_id,
        ts_us,
        "vault",
        "vault",
        "orders/api",
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


def test_held_events_go_out_oldest_first_up_to_the_limit_and_hold_the_commit():
    part = _Partition("raw.vault/0", new_parser("vault", None))
    part.next_offset = 20
    # Records 10-14 made c (from record 12), a (10) and b (11); records 15-19 made d (15).
    part.hold([event("c", 30), event("a", 10), event("b", 20)], [3, 1, 2], [12, 10, 11])
    part.hold([event("d", 40)], [4], [15])
    assert part.commit_position() == 10
    out = part.release(25)
    assert [(ts, row.event_id, stamp) for ts, row, stamp in out] == [(10, "a", 1), (20, "b", 2)]
    assert part.commit_position() == 12  # the records of a and b need no reading again
    assert [row.event_id for _, row, _ in part.release(None)] == ["c", "d"]
    assert part.commit_position() == 20
    assert part.release(None) == []


def test_a_held_event_keeps_the_commit_at_its_own_first_record():
    """Sent events after an unsent one in time but before it in the log do not move the
    commit past the unsent one's record."""
    part = _Partition("raw.vault/0", new_parser("vault", None))
    part.next_offset = 20
    part.hold([event("late-in-log", 5), event("early-in-log", 50)], [1, 2], [18, 10])
    part.release(5)
    assert part.commit_position() == 10
