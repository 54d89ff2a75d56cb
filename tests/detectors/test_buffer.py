from __future__ import annotations

from world import after, frame, row

from detectors.buffer import EventBuffer, ordered
from detectors.events import Events


def _chunk(*hours: float, who: str = "alice") -> Events:
    return frame([row(who, after(h), ip="192.168.10.4", kind="human") for h in hours])


def test_chunks_are_cut_in_time_order_and_recoded():
    buffer = EventBuffer(_chunk())
    buffer.add(_chunk(0.5, 2.0, who="bob"))
    buffer.add(_chunk(0.1, 1.0))
    assert len(buffer) == 4
    assert buffer.first_us() == int(_chunk(0.1).ts_us[0])
    end = int(_chunk(1.5).ts_us[0])
    assert buffer.count_before(end) == 3
    peeked = buffer.peek(end)
    assert list(peeked.ts_us) == sorted(peeked.ts_us) and len(buffer) == 4
    assert sorted(set(peeked.icode.tolist())) == [0, 1]  # codes over the batch itself
    taken = buffer.take(end)
    assert list(taken.event_id) == list(peeked.event_id)
    assert len(buffer) == 1 and buffer.first_us() == buffer.newest_us()


def test_a_copy_of_an_event_held_or_learned_is_known():
    buffer = EventBuffer(_chunk(), learned_kept=1)
    first, second = _chunk(0.1), _chunk(0.2)
    buffer.add(first)
    buffer.add(second)
    assert buffer.knows(first.event_id[0]) and buffer.knows(second.event_id[0])
    buffer.take(int(second.ts_us[0]) + 1)
    assert buffer.knows(first.event_id[0])  # learned lately
    buffer.clear()
    assert not buffer.knows(first.event_id[0]) and len(buffer) == 0


def test_ordered_merges_chunks_by_time_then_id():
    a, b = _chunk(0.3, 0.1), _chunk(0.2)
    merged = ordered([a, b], _chunk())
    assert list(merged.ts_us) == sorted([*a.ts_us, *b.ts_us])
