"""The late-event ledger of a live member.

Events older than the watermark of their partition (a record re-delivered after a crash,
or later than the lateness allowed) are stored but not judged: their batch was already
learned from. Those a reload would judge again (newer than the last snapshot's watermark)
are listed in the store, per partition (`live/<partition>/late`, cleared by the next
snapshot), and stay unjudged after a reload, in the store and when delivered again: judged
there, a late event could open an incident earlier than a stored one and then take in the
findings of that one, raising one incident twice. For the same reason a reload first
learns again up to where learning had got when they came late (the list keeps it): the
clock may go back (a caught-up partition receives records again), and events it came late
to must not turn fresh.

Which events came late is a fact about their arrival, which the store does not keep: the
ledger keeps those whose listing failed until it succeeds, across reloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipeline.detection.checkpoint import LateList, late_key
from pipeline.store.base import DetectionState


class LateLedger:
    """Late events since `floor` (the last snapshot's watermark): event id -> (partition
    key, an identity of that key), and which partitions' lists are stored."""

    def __init__(self) -> None:
        self.floor: int | None = None  # where a reload judges again from
        self.late: dict[str, tuple[str, str]] = {}
        self.saved: set[str] = set()  # keys whose late events are listed in the store
        self.unsaved: set[str] = set()  # keys whose list in the store lacks some

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.late

    def replayed(self, watermark_us: int | None, ts_us: int) -> bool:
        """Would a reload judge an event at `ts_us` of a partition whose snapshot has
        `watermark_us` (None: no snapshot, the reload starts at `floor`)?"""
        mark = self.floor if watermark_us is None else watermark_us
        return mark is None or ts_us >= mark

    def note(self, event_id: str, key: str, identity: str) -> None:
        """An event that came late and that a reload would judge: to be listed."""
        self.late[event_id] = (key, identity)
        self.unsaved.add(key)

    def unsaved_lists(self, start_us: int | None) -> dict[str, bytes]:
        """The lists of the partitions that lack some, with where learning has got; call
        `listed` once they are stored."""
        lists: dict[str, list[str]] = {key: [] for key in self.unsaved}
        for event_id, (key, _) in self.late.items():
            if key in lists:
                lists[key].append(event_id)
        return {
            late_key(key): LateList(start=start_us, late=tuple(sorted(ids))).encode()
            for key, ids in lists.items()
        }

    def listed(self) -> None:
        self.saved.update(self.unsaved)
        self.unsaved = set()

    def keep_owned(self, owner: Callable[[str], str | None]) -> None:
        """Keep the unlisted knowledge of the partitions still owned."""
        self.late = {e: (k, i) for e, (k, i) in self.late.items() if owner(i) == k}

    def reload(self, store: DetectionState, keys: Mapping[str, str]) -> int | None:
        """Read the stored lists of the partitions `keys` (key -> an identity of it) and of
        those this ledger holds events of; keep what was not listed yet. Return where
        learning had got when the listed events came late (the furthest)."""
        carried = self.late
        wanted = dict(keys)
        wanted.update({k: i for k, i in carried.values()})
        late: dict[str, tuple[str, str]] = {}
        saved: set[str] = set()
        progress: list[int] = []
        for key, identity in sorted(wanted.items()):
            raw = store.detection_state(late_key(key))
            doc = LateList.decode(raw, late_key(key)) if raw is not None else LateList()
            if doc.late:
                late.update(dict.fromkeys(doc.late, (key, identity)))
                saved.add(key)
            if doc.start is not None:
                progress.append(doc.start)
        unsaved = {k for e, (k, _) in carried.items() if e not in late}
        late.update({e: v for e, v in carried.items() if e not in late})
        self.late, self.saved, self.unsaved = late, saved, unsaved
        return max(progress, default=None)

    def cleared_lists(self) -> dict[str, bytes]:
        """A snapshot makes every listed event older than its watermark: the stored lists,
        emptied, for the snapshot to store (then `reset` at its watermark)."""
        return {late_key(key): LateList().encode() for key in self.saved}

    def reset(self, floor: int | None) -> None:
        """Start again from `floor`: nothing late since."""
        self.floor, self.late, self.saved, self.unsaved = floor, {}, set(), set()
