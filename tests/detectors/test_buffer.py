from __future__ import annotations

import numpy as np
from world import after, frame, row

from detectors.buffer import MAX_CHUNKS, EventBuffer, ordered
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


def test_new_holds_only_what_came_since_the_batch_was_judged():
    buffer = EventBuffer(_chunk())
    buffer.add(_chunk(0.1, 0.2))
    buffer.judged()
    buffer.add(_chunk(0.3, 1.5))  # 1.5: a later batch's
    start, end = int(_chunk(0.15).ts_us[0]), int(_chunk(1.0).ts_us[0])
    assert list(buffer.new(start, end).ts_us) == list(_chunk(0.3).ts_us)
    buffer.judged()
    assert len(buffer.new(start, end)) == 0 and len(buffer) == 4


def test_peek_of_some_identities_survives_the_merging_of_chunks():
    buffer = EventBuffer(_chunk())
    for n in range(MAX_CHUNKS + 3):  # merged into one chunk on the way
        buffer.add(_chunk(0.01 * n, who="alice"))
        buffer.add(_chunk(0.01 * n + 0.001, who=f"svc-{n % 3}"))
    end = int(_chunk(2.0).ts_us[0])
    every = buffer.peek(end)
    some = buffer.peek(end, ["svc-1", "alice"])
    wanted = np.isin(every.identity, ["svc-1", "alice"])
    assert list(some.event_id) == list(every.event_id[wanted]) and len(some) > MAX_CHUNKS
    assert len(buffer.peek(end, ["nobody"])) == 0


def test_chunks_merge_as_a_binary_counter_carries():
    """Merging everything once chunks were many copied the whole open batch every few
    polls; now an event is copied a logarithmic number of times."""
    buffer = EventBuffer(_chunk())
    for n in range(37):  # 37 = 32 + 4 + 1
        buffer.add(_chunk(0.001 * n, who=f"svc-{n % 5}"))
    assert [len(c) for c in buffer.chunks] == [32, 4, 1]
    merged = buffer.peek(int(_chunk(1.0).ts_us[0]))
    assert list(merged.ts_us) == sorted(merged.ts_us) and len(merged) == 37


def test_peek_of_some_identities_after_learning_part_of_the_chunks():
    buffer = EventBuffer(_chunk())
    for n in range(21):
        buffer.add(_chunk(0.01 * n, 0.01 * n + 0.5, who=f"svc-{n % 4}"))
    buffer.peek(int(_chunk(2.0).ts_us[0]), ["svc-1"])  # indexes the chunks as they are
    buffer.take(int(_chunk(0.3).ts_us[0]))  # cuts them: what is left is indexed anew
    buffer.add(_chunk(0.9, who="svc-1"))
    end = int(_chunk(0.75).ts_us[0])
    every = buffer.peek(end)
    some = buffer.peek(end, ["svc-1", "svc-3"])
    wanted = np.isin(every.identity, ["svc-1", "svc-3"])
    assert list(some.event_id) == list(every.event_id[wanted]) and len(some) > 0
    assert len(buffer.peek(end, ["svc-1", "svc-3"], most=2)) == 0  # each has more than 2


def test_chunks_in_order_are_joined_as_they_are_and_others_sorted():
    a, b = _chunk(0.1, 0.2), _chunk(0.3)
    assert list(ordered([a, b], _chunk()).event_id) == [*a.event_id, *b.event_id]
    same = frame([row("bob", after(0.2), ip="192.168.10.4", kind="human", event_id="a")])
    tied = frame([row("bob", after(0.2), ip="192.168.10.4", kind="human", event_id="Z")])
    # the same time: the id decides, even across chunks that each are in order
    assert list(ordered([same, tied], _chunk()).event_id) == ["Z", "a"]


def test_peek_of_some_identities_leaves_out_the_busy_ones():
    buffer = EventBuffer(_chunk())
    buffer.add(_chunk(0.1, 0.2, 0.3, who="busy"))
    buffer.add(_chunk(0.15, who="quiet"))
    buffer.add(_chunk(0.4, who="busy"))
    end = int(_chunk(1.0).ts_us[0])
    assert set(buffer.peek(end, ["busy", "quiet"], most=3).identity) == {"quiet"}
    assert len(buffer.peek(end, ["busy", "quiet"], most=4)) == 5


def test_codes_stay_as_few_as_what_is_held_in_a_stream_that_never_empties():
    """A service's buffer is never empty (the next hour's events are in before the last
    hour is learned from), so its code tables never emptied: they kept every identity,
    secret, network and client ever seen. A password spray of random user names grew
    them without end, and codes are packed into 64-bit keys (`icode << 40`), which wrap
    past 2**24 identities: two would share a key. Now the tables hold what the buffer does."""
    buffer = EventBuffer(_chunk(), table_slack=100)
    for hour in range(40):
        sprayed = [
            row(f"user-{hour}-{n}", after(hour + n / 100), ip=f"203.0.{hour}.{n}", kind="human")
            for n in range(50)
        ]
        buffer.add(frame(sprayed))
        buffer.add(_chunk(hour + 0.99, who="svc-orders"))
        taken = buffer.take(int(_chunk(hour).ts_us[0]))  # the hour before, learned from
        assert len(buffer) > 0  # never empty
        if hour:
            assert set(taken.identity) >= {f"user-{hour - 1}-0", "svc-orders"}
        held = buffer.peek(int(_chunk(hour + 1).ts_us[0]))
        for code, value in (("icode", "identity"), ("ncode", "net"), ("scode", "secret")):
            codes, values = getattr(held, code), getattr(held, value)
            assert int(codes.max()) < 400  # not every value seen (2,000 by the last hour)
            # one code per value and one value per code, as before
            pairs = set(zip(codes.tolist(), values.tolist(), strict=True))
            assert len(pairs) == len(set(codes.tolist())) == len(set(values.tolist()))
        some = buffer.peek(int(_chunk(hour + 1).ts_us[0]), ["svc-orders", f"user-{hour}-7"])
        assert sorted(set(some.identity)) == sorted({"svc-orders", f"user-{hour}-7"})
        arrived = buffer.new(int(_chunk(hour).ts_us[0]), int(_chunk(hour + 1).ts_us[0]))
        coded = dict(zip(held.identity.tolist(), held.icode.tolist(), strict=True))
        assert len(arrived) == 51 and all(  # what came since is coded as what is held
            coded[i] == c for i, c in zip(arrived.identity, arrived.icode.tolist(), strict=True)
        )
        buffer.judged()  # as live detection does at every poll
