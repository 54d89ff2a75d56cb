"""The live event buffer: prepared events not learned from yet, as they arrived.

Each event is prepared for the detectors once, when it arrives (`prepare` costs more than
judging): each poll's events are one prepared chunk, in (time, id) order, and a batch is
cut out of the chunks, in that order, when it is judged. `prepare` numbers the grouping
codes per call, so the buffer renumbers each chunk's codes, as it arrives, by tables of
its own: any chunks cut out together are coded alike without coding them again (which,
over a large open batch, cost more than judging it). The tables are emptied whenever the
buffer is. A stream's buffer never is (the next hour's events come before the last hour is
learned from), so once a table holds many more values than the buffer does events, what
is held is coded anew (`_compact`): otherwise a spray of random user names would grow the
tables without end, and codes packed into 64-bit keys (`icode << 40`) wrap past 2**24.

It also keeps apart the chunks added since the open batch was last judged (`fresh`), so a
stream can judge what is new without cutting out the whole batch again.

Nothing done per poll costs in proportion to everything held (an open batch of an hour at
10,000 events a second holds 36 million): chunks are merged as a binary counter merges its
digits (a chunk no larger than the one after it is merged into it), so an event is copied
a logarithmic number of times and few chunks are kept; and each chunk's events of given
identities are found through an index by identity code, built once per chunk, rather
than by scanning every chunk (`peek` of some identities, what each poll judges).

The buffer also knows the ids of what it holds and of the last `learned_kept` events
learned from: a record delivered again (read again after a rebalance) is judged once, and
one learned from lately is a copy, not a late event.
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pandas as pd

from detectors.events import Events

_FIELDS = [f.name for f in fields(Events)]
_CODED = [("icode", "identity"), ("scode", "secret"), ("ncode", "net"), ("ccode", "client")]
MAX_CHUNKS = 32  # prepared chunks kept apart at most (binary merging keeps far fewer)
LEARNED_KEPT = 200_000  # ids of events learned from, kept to tell a copy from a late event
TABLE_SLACK = 100_000  # values a code table may hold beyond twice the events held


class EventBuffer:
    """Prepared events not learned from yet; `empty` is a prepared batch of none."""

    def __init__(
        self, empty: Events, learned_kept: int = LEARNED_KEPT, table_slack: int | None = None
    ) -> None:
        self.empty = empty
        self.learned_kept = learned_kept
        self.table_slack = TABLE_SLACK if table_slack is None else table_slack
        self.chunks: list[Events] = []
        self.fresh: list[Events] = []  # chunks added since `judged` was last called
        self._tables: dict[str, dict[str, int]] = {code: {} for code, _ in _CODED}
        self.seen: set[str] = set()  # ids of the events held
        self.learned: dict[str, None] = {}  # ids of the last events learned from, in order
        # id(chunk) -> (chunk, its events by identity); the chunk is kept so its id is not reused
        self._index: dict[int, tuple[Events, _ByIdentity]] = {}

    def clear(self) -> None:
        """Forget everything (a reload fills the buffer again from the store)."""
        self.chunks, self.fresh, self.seen, self.learned = [], [], set(), {}
        self._tables = {code: {} for code, _ in _CODED}
        self._index = {}

    def __len__(self) -> int:
        return sum(len(c) for c in self.chunks)

    def knows(self, event_id: str) -> bool:
        """Held, or learned from lately: a copy of it is not judged again."""
        return event_id in self.seen or event_id in self.learned

    def add(self, chunk: Events) -> None:
        """Keep one prepared chunk, in (time, id) order."""
        if not len(chunk):
            return
        self.seen.update(chunk.event_id.tolist())
        chunk = self._coded(chunk)
        self.chunks.append(chunk)
        self.fresh.append(chunk)
        chunks = self.chunks
        while len(chunks) > 1 and len(chunks[-2]) <= len(chunks[-1]):
            chunks[-2:] = [ordered(chunks[-2:], self.empty)]
        if len(chunks) > MAX_CHUNKS:
            self.chunks = [ordered(chunks, self.empty)]
        self._forget_index()

    def first_us(self) -> int | None:
        return min((int(c.ts_us[0]) for c in self.chunks), default=None)

    def newest_us(self) -> int | None:
        return max((int(c.ts_us[-1]) for c in self.chunks), default=None)

    def count_before(self, end_us: int) -> int:
        return sum(int(np.searchsorted(c.ts_us, end_us)) for c in self.chunks)

    def events(self) -> Events:
        """Everything held, in (time, id) order."""
        return ordered(self.chunks, self.empty)

    def parts(self, end_us: int) -> list[Events]:
        """The events before `end_us` as they lie in the chunks (views; `joined` makes one
        batch of them, which costs in proportion to the batch)."""
        return [c.slice(0, cut) for c in self.chunks if (cut := _cut(c, end_us))]

    def peek(
        self, end_us: int, identities: list[str] | None = None, most: int | None = None
    ) -> Events:
        """The events before `end_us` (of `identities` only, if given, and of those only
        the ones with at most `most` events there), left in the buffer."""
        if identities is None:
            return joined(self.parts(end_us), self.empty)
        table = self._tables["icode"]
        known = [i for i in identities if i in table]
        codes = np.array(sorted({table[i] for i in known}), dtype=np.int64)
        cuts = [(c, cut) for c in self.chunks if (cut := _cut(c, end_us))]
        found = [self._by_identity(c).find(codes, cut) for c, cut in cuts]
        if most is not None:
            counts = sum((n for _, n in found), np.zeros(len(codes), dtype=np.int64))
            if (counts > most).any():
                # count first, cut out after: a busy identity's events are not copied at all
                busy = set(codes[counts > most].tolist())
                return self.peek(end_us, [i for i in known if table[i] not in busy])
        parts = [c.take(at) for (c, _), (at, _) in zip(cuts, found, strict=True) if at.size]
        return joined(parts, self.empty)

    def _by_identity(self, chunk: Events) -> _ByIdentity:
        entry = self._index.get(id(chunk))
        if entry is None or entry[0] is not chunk:
            entry = self._index[id(chunk)] = (chunk, _ByIdentity.of(chunk.icode))
        return entry[1]

    def _forget_index(self) -> None:
        """Drop the indexes of chunks no longer held (merged, or learned from)."""
        held = {id(c) for c in self.chunks}
        self._index = {k: v for k, v in self._index.items() if k in held}

    def _coded(self, chunk: Events) -> Events:
        """A prepared chunk with its codes (0.. in order of first appearance, per chunk)
        renumbered by the buffer's tables."""
        codes = {}
        for code, value in _CODED:
            table = self._tables[code]
            local = getattr(chunk, code)
            _, first = np.unique(local, return_index=True)
            names = getattr(chunk, value)[first].tolist()
            known = np.array([table.setdefault(n, len(table)) for n in names], dtype=np.int64)
            codes[code] = known[local]
        return replace(chunk, **codes)

    def _compact(self) -> None:
        """Code what is held anew, by tables of its own values only (`recode` first: `_coded`
        renumbers a chunk's own codes, 0.. as `prepare` makes them). It costs in proportion
        to what is held, and comes only after that many new values, so it is paid once per
        value at most."""
        self._tables = {code: {} for code, _ in _CODED}
        self.chunks = [self._coded(recode(c)) for c in self.chunks]
        self.fresh = [self._coded(recode(c)) for c in self.fresh]
        self._index = {}

    def new(self, start_us: int, end_us: int) -> Events:
        """The events in [start_us, end_us) added since `judged` was last called."""
        parts = [c.slice(_cut(c, start_us), _cut(c, end_us)) for c in self.fresh]
        return joined(parts, self.empty)

    def judged(self) -> None:
        """What is held has been judged: later `new` calls return only what comes next."""
        self.fresh = []

    def take(self, end_us: int) -> Events:
        """The events before `end_us`, recoded, out of the buffer (learned from)."""
        parts, kept = [], []
        for c in self.chunks:
            cut = _cut(c, end_us)
            if cut:
                parts.append(c.slice(0, cut))
                ids = c.event_id[:cut].tolist()
                self.seen.difference_update(ids)
                self.learned.update(dict.fromkeys(ids))
            if cut < len(c):
                kept.append(c.slice(cut, len(c)) if cut else c)
        self.chunks = kept
        self._forget_index()
        if not kept:
            self._tables = {code: {} for code, _ in _CODED}
        elif max(map(len, self._tables.values())) > 2 * len(self) + self.table_slack:
            self._compact()
        if len(self.learned) > 2 * self.learned_kept:
            self.learned = dict.fromkeys(list(self.learned)[-self.learned_kept :])
        return recode(ordered(parts, self.empty))


class _ByIdentity:
    """One chunk's event positions ordered by identity code (then position, so each
    identity's positions stay in the chunk's time order)."""

    def __init__(self, order: np.ndarray, codes: np.ndarray) -> None:
        self.order, self.codes = order, codes

    @classmethod
    def of(cls, icode: np.ndarray) -> _ByIdentity:
        order = np.argsort(icode, kind="stable")
        return cls(order, icode[order])

    def find(self, wanted: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
        """The positions before `cut` of the identity codes `wanted` (sorted), in the
        chunk's order, and how many each code has there."""
        lo = np.searchsorted(self.codes, wanted, side="left")
        hi = np.searchsorted(self.codes, wanted, side="right")
        runs = [self.order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
        runs = [r[: np.searchsorted(r, cut)] for r in runs]  # each run ascends
        counts = np.array([len(r) for r in runs], dtype=np.int64)
        at = np.sort(np.concatenate(runs)) if runs else np.empty(0, dtype=np.int64)
        return at, counts


def joined(parts: list[Events], empty: Events) -> Events:
    """Parts of chunks (`EventBuffer.parts`) as one batch in (time, id) order."""
    return ordered([c for c in parts if len(c)], empty)


def _cut(chunk: Events, end_us: int) -> int:
    return int(np.searchsorted(chunk.ts_us, end_us))


def ordered(chunks: list[Events], empty: Events) -> Events:
    """Chunks of prepared events, each in (time, id) order, as one in that order."""
    if not chunks:
        return empty
    if len(chunks) == 1:
        return chunks[0]
    ev = Events(**{f: np.concatenate([getattr(c, f) for c in chunks]) for f in _FIELDS})
    if all(_before(a, b) for a, b in zip(chunks, chunks[1:], strict=False)):
        return ev  # a stream's chunks mostly come in order: nothing to sort
    return ev.take(time_order(ev.ts_us, ev.event_id))


def _before(a: Events, b: Events) -> bool:
    """Every event of chunk `a` comes before every event of chunk `b` (each is ordered)."""
    last, first = (int(a.ts_us[-1]), a.event_id[-1]), (int(b.ts_us[0]), b.event_id[0])
    return bool(last < first)


def time_order(ts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The (time, id) order of events: by time (integers, fast), then the few runs of equal
    times by id.

    >>> time_order(np.array([2, 1, 1]), np.array(["a", "c", "b"], dtype=object)).tolist()
    [2, 1, 0]
    """
    order = np.argsort(ts, kind="stable")
    same = ts[order]
    same = same[1:] == same[:-1]
    if same.any():
        starts = np.flatnonzero(np.r_[True, ~same])
        ends = np.r_[starts[1:], len(order)]
        runs = ends - starts > 1
        for a, b in zip(starts[runs].tolist(), ends[runs].tolist(), strict=True):
            run = order[a:b]
            order[a:b] = run[np.argsort(ids[run], kind="stable")]
    return order


def recode(ev: Events) -> Events:
    """Events with grouping codes computed over them all (`prepare` numbers identities,
    secrets, networks and clients per call, so codes from two calls do not match)."""
    return replace(
        ev,
        icode=pd.factorize(ev.identity)[0].astype(np.int64),
        scode=pd.factorize(ev.secret)[0].astype(np.int64),
        ncode=pd.factorize(ev.net)[0].astype(np.int64),
        ccode=pd.factorize(ev.client)[0].astype(np.int64),
    )
