"""Live detection for a streaming member: events arrive in small polled batches, are stored,
judged and learned from, and the caller commits its offsets when `process` returns.

This module owns what is particular to a member: which identities it owns, and taking them
over (a start, a rebalance, the way back after a failed `process`). The rest is composed:
the batch clock (`detectors.clock`), the buffer of prepared events (`detectors.buffer`),
the one batch loop (`detectors.stepping`), the late-event ledger (`ledger`) and the
checkpoint that every piece of state is stored as (`checkpoint`).

Batches of `batch_minutes` are judged as events arrive (`peek`: alerts within a poll of the
evidence) and learned from once complete, which is when the stream's clock has passed
their end. Only the first batch not yet learned from is peeked: a later one would be
judged against baselines that have not learned the batches before it (findings the
complete batch does not confirm) and its findings would be grouped ahead of theirs (an
incident closed too early, then split). When the clock lags behind the newest events (a
slow partition), their alerts wait for it. The first incomplete batch is judged again only
when a poll added to it or the batches before it were learned from.

What survives a crash or a rebalance, per owned partition: the baselines of its identities,
the watermark (start of the first batch not yet learned) and its open incidents, all written
by `snapshot` (before the first snapshot, the start of live detection, `live/origin`). A new
owner loads them and judges again the stored events after the watermark. Which finding
opened an incident, hence its id, depends on what had arrived when it was first judged, so
the stored alerts of the owned identities are loaded too: an incident judged again re-opens
the stored one it falls within the grouping gap of, keeping its id (see
`detectors.engine.Detection.known`); nothing is raised twice, it only updates. Every member
also loads the baselines of identities it does not own, read-only, because whether a secret
"belongs to others" is knowledge across identities.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from detectors.alert import Alert, Incident
from detectors.baseline import Baselines
from detectors.buffer import EventBuffer, joined
from detectors.clock import BatchClock
from detectors.engine import Detection
from detectors.events import HOUR_US, Events
from detectors.incidents import IncidentDoc, exact_us, from_alert, merge
from detectors.settings import DetectorsConfig
from detectors.stepping import step_batches
from pipeline.detection import checkpoint as cp
from pipeline.detection.background import WholeJudging
from pipeline.detection.frames import event_rows, prepared, stored_alerts
from pipeline.detection.ledger import LateLedger
from pipeline.detection.roles import DetectionStore
from pipeline.record import EventRow
from pipeline.store.base import EventFilter

log = logging.getLogger(__name__)

PEEK_ALWAYS = 50_000  # an open batch of up to this many events is judged whole every poll
PEEK_SHARE = 0.25  # of the time, at most, spent judging a larger open batch whole

# The identity owns nothing here (None) or belongs to this partition key, e.g. "events/3".
Owner = Callable[[str], str | None]


class LiveDetection:
    """Detection state of one streaming member over the identities it owns."""

    def __init__(
        self,
        store: DetectionStore,
        cfg: DetectorsConfig,
        member: str,
        lateness_seconds: float = 60.0,
        snapshot_seconds: float = 30.0,
    ) -> None:
        self.store, self.cfg, self.member = store, cfg, member
        self.clock = BatchClock(cfg.batch_minutes * 60_000_000, int(lateness_seconds * 1e6))
        self.snapshot_seconds = snapshot_seconds
        self.owner: Owner = lambda identity: None
        self.detection = Detection(_empty(cfg), cfg)
        self.watermarks: dict[str, int] = {}  # partition key -> its own watermark
        # Owned events at or after `start`, prepared, one chunk per poll.
        self.pending = EventBuffer(self._prepare([]))
        self.ledger = LateLedger()
        self.peeked: tuple[int, int] | None = None  # (batch start, events) judged last
        # (batch start, when it ended, seconds it took) of the last judging of a whole open
        # batch; see `_whole_due`. The clock is a parameter for tests.
        self.whole: tuple[int, float, float] | None = None
        self.peek_always = PEEK_ALWAYS
        self.monotonic: Callable[[], float] = time.monotonic
        # Judge a large open batch whole in a process of its own (`serve`'s detection
        # process does): each poll's new events are judged at once meanwhile.
        self.background = False
        self.judging = WholeJudging(monotonic=lambda: self.monotonic())
        self.touched: set[str] = set()  # identities learned from since the last snapshot
        self.unsaved: dict[str, Incident] = {}  # changed, their alerts not stored yet
        self.entry_start: int | None = None  # `start` when `process` was last called
        self.failed = False  # that call raised: the state may hold part of its batch
        self.last_snapshot = time.monotonic()
        self.late_count = 0  # owned events that came late (stored, not judged)

    @property
    def start(self) -> int | None:
        """The start of the first batch not learned from yet (the watermark)."""
        return self.clock.start_us

    @property
    def buffer(self) -> Events:
        """The events not learned from yet, in (time, id) order."""
        return self.pending.events()

    # -- ownership -------------------------------------------------------------------------
    def assign(self, owner: Owner) -> None:
        """Take over the identities `owner` maps to a partition key: load the baselines (of
        every identity: others' are read-only context), the owned partitions' watermarks
        and open incidents, the stored alerts that judging again may reach, and the stored
        events after those watermarks. Also the way back after `process` failed half-way:
        whatever it had changed is replaced by what the store holds. Baselines trained
        with another time layout than the config's are refused (StoreError)."""
        self.owner = owner
        self.judging.wait()  # what it finds is of the state replaced here
        meta = cp.load_meta(self.store)
        base = cp.load_baselines(self.store, self.cfg, meta)
        self.detection = Detection(base, self.cfg)
        self.watermarks = self._load_partitions(base)
        marks = list(self.watermarks.values())
        if not marks and meta is not None and meta.watermark_us:
            marks = [meta.watermark_us]
        if not marks:
            marks = self._origin()
        self.clock.start_us = min(marks) if marks else None
        if self.start is not None:
            base.observed_until_us = max(base.observed_until_us, self.start)
        self.pending.clear()
        self.touched, self.unsaved = set(), {}
        self.ledger.keep_owned(owner)
        self.peeked, self.whole, self.ledger.floor = None, None, self.start
        if self.start is not None:
            reached = [self._reload(self.start), self.entry_start if self.failed else None]
            if progress := [r for r in reached if r is not None]:
                self.unsaved.update(self._run(max(progress)))
        else:
            self.ledger.reset(None)
        self.failed = False

    def _load_partitions(self, base: Baselines) -> dict[str, int]:
        """The owned partitions' watermarks; their open incidents go to the detection."""
        watermarks: dict[str, int] = {}
        incidents: list[IncidentDoc] = []
        owned_keys = {self.owner(name) for name in base.names} - {None}
        for key in sorted(k for k in owned_keys if k is not None):
            raw = self.store.detection_state(cp.partition_key(key))
            if raw is not None:
                state = cp.PartitionState.decode(raw, cp.partition_key(key))
                watermarks[key] = state.watermark_us
                base.version = max(base.version, state.version)
                incidents.extend(state.incidents)
        for doc in incidents:
            loaded = self.detection.open[doc.identity] = doc.incident()
            self.detection.raised.add(loaded.id)
        return watermarks

    def _origin(self) -> list[int]:
        """Where judging again starts when no owned partition has a snapshot: where live
        detection began, if an owned identity has events since (its owner may have died
        before its first snapshot); otherwise nothing is owed."""
        raw = self.store.detection_state(cp.ORIGIN)
        if raw is None:
            return []
        origin = cp.Origin.decode(raw, cp.ORIGIN).watermark_us
        found = self.store.stats("identity", EventFilter(since=_dt(origin)))
        identities = found["identity"].dropna() if "identity" in found else []
        return [origin] if any(self.owner(i) is not None for i in identities) else []

    def _reload(self, since_us: int) -> int | None:
        """Buffer again what the previous owner stored but had not learned from, except the
        events that came late (listed in the store, or in the ledger if their listing
        failed); return where learning had got when they came."""
        self._known_incidents(since_us)
        frame = self.store.events(EventFilter(since=_dt(since_us)))
        identities = frame["identity"].fillna("") if not frame.empty else pd.Series([])
        keys = {k: i for i in set(identities) if (k := self.owner(i)) is not None}
        progress = self.ledger.reload(self.store, keys)
        if not frame.empty:
            ts = frame["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
            keep = np.array([self._fresh(i, t) for i, t in zip(identities, ts, strict=True)])
            if self.ledger.late:
                keep &= ~frame["event_id"].isin(list(self.ledger.late)).to_numpy()
            self._add(event_rows(frame[keep]))
        return progress

    def _known_incidents(self, since_us: int) -> None:
        """The stored alerts of owned identities that findings judged again after `since_us`
        may join: the snapshot's open incident takes its newer findings from its own
        alert; the others (raised after the snapshot, or before a reload) become
        `Detection.known`, re-opened under their ids when judging again reaches them.
        Alerts are few (a handful a day), so all of them are read."""
        gap = int(self.cfg.group_gap_hours * HOUR_US)
        horizon = since_us - HOUR_US - gap  # see Detection.run
        known: dict[str, list[Incident]] = {}
        for alert in stored_alerts(self.store):
            if self.owner(alert.identity) is None or exact_us(alert.window_end) < horizon:
                continue
            stored = from_alert(alert)
            if not stored.findings:
                continue
            current = self.detection.open.get(alert.identity)
            if current is not None and current.id == stored.id:
                merge(current, stored)
            else:
                known.setdefault(alert.identity, []).append(stored)
        self.detection.known = known
        self.detection.raised.update(i.id for mine in known.values() for i in mine)

    def _fresh(self, identity: str, ts_us: int) -> bool:
        key = self.owner(identity)
        if key is None:
            return False
        marks = [m for m in (self.watermarks.get(key), self.start) if m is not None]
        return ts_us >= max(marks) if marks else True

    # -- the stream ------------------------------------------------------------------------
    def process(
        self, rows: Sequence[EventRow], clock_us: int | None = None, stored: bool = False
    ) -> list[Alert]:
        """Store the events (unless the caller has: `stored`), judge them, store the alerts
        they raise (the outbox) and, from time to time, a snapshot. When this returns, the
        batch may be committed. If it raises, the detection state may hold part of the
        batch: call `assign` again before retrying (alerts not stored yet are kept, so a
        retry without it still stores them)."""
        self.entry_start = self.start
        try:
            return self._process(rows, clock_us, stored)
        except BaseException:
            self.failed = True
            raise

    def _process(self, rows: Sequence[EventRow], clock_us: int | None, stored: bool) -> list[Alert]:
        fresh = self._sort(rows)
        self.anchor(fresh)  # before they are stored
        if rows and not stored:
            self.store.write_batch(list(rows))
        if self.ledger.unsaved:  # listed before any alert judged without them is stored
            lists = self.ledger.unsaved_lists(self.start)
            self.store.save_detection([], lists, [], self.detection.base.version)
            self.ledger.listed()
        self.unsaved.update(self._judge(fresh, clock_us))
        merged = self.detection.merged  # into an incident raised before (engine.py)
        alerts = [i.alert() for i in self.unsaved.values() if i.id not in merged]
        if alerts:
            self.store.save_detection(
                [], {}, [a.model_dump(mode="json") for a in alerts], self.detection.base.version
            )
            self.detection.raised.update(a.id for a in alerts)
        self.unsaved = {}
        if time.monotonic() - self.last_snapshot >= self.snapshot_seconds:
            self.snapshot()
        return alerts

    def _sort(self, rows: Sequence[EventRow]) -> list[EventRow]:
        """The owned events to judge; count (and note) those that came late."""
        fresh = []
        for r in rows:
            key = self.owner(r.identity)
            if key is None or self.pending.knows(r.event_id):
                continue
            if r.event_id in self.ledger:  # delivered again
                self.late_count += 1
            elif self._fresh(r.identity, r.ts_us):
                fresh.append(r)
            else:
                self.late_count += 1
                if self.ledger.replayed(self.watermarks.get(key), r.ts_us):
                    self.ledger.note(r.event_id, key, r.identity)
        return fresh

    def anchor(self, rows: Sequence[EventRow]) -> None:
        """Before `rows` are stored for this runtime to judge (by `process`, or by a
        follower before `process(..., stored=True)`): until it has a start, note where
        live detection begins. Nothing else tells it until the first snapshot; noted
        before the events (a kill in between would leave them stored and never judged),
        an owner taking over before then judges again from there."""
        if self.start is None:
            owned = [r.ts_us for r in rows if self.owner(r.identity) is not None]
            if owned:
                start_us = self.clock.align(min(owned))
                cp.save_origin(self.store, start_us, self.member, self.detection.base.version)

    def _add(self, rows: list[EventRow]) -> None:
        """Prepare new events, as one more chunk."""
        if not rows:
            return
        self.pending.add(self._prepare(sorted(rows, key=_order)))
        first = self.pending.first_us()
        if self.start is None and first is not None:
            start = self.ledger.floor = self.clock.begin(first)
            base = self.detection.base
            base.observed_until_us = max(base.observed_until_us, start)

    def _judge(self, rows: list[EventRow], clock_us: int | None) -> dict[str, Incident]:
        self._add(rows)
        changed: dict[str, Incident] = {}
        newest = self.pending.newest_us()
        if self.start is None or newest is None:
            return changed
        changed.update(self._run(self.clock.now(newest, clock_us)))
        # The first incomplete batch: judge what is there now, learn later. Later batches
        # wait for it (see the module's docstring). Judged again only if it changed.
        changed.update(self._finished())
        start, end = self.clock.open_batch() or (0, 0)
        count = self.pending.count_before(end)
        if count and self.peeked != (start, count):
            if not self._whole_due(start, count):
                judged = self._peek_new(start, end)
            elif self.background and count > self.peek_always and self._fork_whole(start, end):
                judged = self._peek_new(start, end)  # meanwhile, this poll's events at once
            else:
                began = self.monotonic()
                judged = self.detection.peek(self.pending.peek(end), start, end)
                ended = self.monotonic()
                self.whole = (start, ended, ended - began)
            self.pending.judged()
            for incident in judged:
                changed[incident.id] = incident
            self.peeked = (start, count)
        return changed

    def _fork_whole(self, start: int, end: int) -> bool:
        """Start judging the open batch whole in a fork (`background.py`); False if none
        could be made: then it is judged here, as without `background`."""
        parts, empty = self.pending.parts(end), self.pending.empty
        return self.judging.start(
            lambda: joined(parts, empty), self.detection.judge_part, start, end
        )

    def _peek_new(self, start: int, end: int) -> list[Incident]:
        """Judge the open batch's events that came since it was last judged."""
        return self.detection.peek_new(
            self.pending.new(start, end),
            lambda identities, most: self.pending.peek(end, identities, most),
            start,
            end,
            self.peek_always,
        )

    def _whole_due(self, start: int, count: int) -> bool:
        """Whether to judge the whole open batch now, or only its newest events. Judging
        it whole costs in proportion to its size, which grows through the batch: above
        `peek_always` events, it is judged whole again only once the time since the last
        time is three times what that took (at most a quarter of the time goes to it).
        In between, each poll's events are judged with the detectors that can judge a
        part alone (`Detection.peek_new`): a root token or a new source is raised within
        a poll at any load, a rate or a count once the whole batch is judged again.
        With `background`, that judging runs in a process of its own (`background.py`)."""
        if self.judging.running:
            return False
        if count <= self.peek_always or self.whole is None or self.whole[0] != start:
            return True
        _, ended, took = self.whole
        return self.monotonic() - ended >= took * (1 - PEEK_SHARE) / PEEK_SHARE

    def _finished(self) -> dict[str, Incident]:
        """The incidents a whole judging in the background has opened or grown, once it
        is done (and if its batch is still the open one)."""
        done = self.judging.take()
        if done is None or done.start_us != self.start:
            return {}
        self.whole = (done.start_us, self.monotonic(), done.took)
        return {i.id: i for i in self.detection.apply_peek(done.findings)}

    def _run(self, clock_us: int) -> dict[str, Incident]:
        """Judge and learn from the complete batches (ending by `clock_us`), jumping over
        silent stretches in one step."""
        changed: dict[str, Incident] = {}
        if self.start is None:
            return changed
        step = self.clock.step_us
        if self.judging.running and clock_us >= self.start + step:
            self.judging.wait()  # learning changes the baselines it reads; the batch,
            # complete, is judged whole anyway
        batches = step_batches(
            self.detection, self.pending, self.start, clock_us, step, skip_silence=True
        )
        for done in batches:
            for incident in done.changed:
                changed[incident.id] = incident
            self.touched.update(set(done.events.identity) - {""})
            self.clock.start_us = done.end_us
        return changed

    def _prepare(self, rows: list[EventRow]) -> Events:
        return prepared(rows, self.cfg)

    # -- persistence -----------------------------------------------------------------------
    def snapshot(self) -> None:
        """Write the owned identities' baselines, each owned partition's watermark and open
        incidents in one store step."""
        self.last_snapshot = time.monotonic()
        if self.start is None:
            return
        base = self.detection.base
        owned = [n for n in base.names if self.owner(n) is not None]
        keys = {self.owner(n) for n in owned} | set(self.watermarks)
        incidents: dict[str, list[IncidentDoc]] = {k: [] for k in keys if k is not None}
        for identity, incident in self.detection.open.items():
            key = self.owner(identity)
            if key is not None:
                incidents.setdefault(key, []).append(IncidentDoc.of(incident))
        state = {
            cp.partition_key(key): cp.PartitionState(
                watermark_us=self.start,
                member=self.member,
                version=base.version,
                incidents=tuple(docs),
            ).encode()
            for key, docs in incidents.items()
        }
        # The late events listed so far are older than the new watermark.
        state.update(self.ledger.cleared_lists())
        names = sorted(n for n in self.touched if self.owner(n) is not None)
        self.store.save_detection(base.to_rows(names), state, [], base.version)
        self.watermarks = dict.fromkeys(incidents, self.start)
        self.touched = set()
        self.ledger.reset(self.start)


def _order(row: EventRow) -> tuple[int, str]:
    return row.ts_us, row.event_id


def _empty(cfg: DetectorsConfig) -> Baselines:
    base = Baselines(
        tz=cfg.timezone, window_minutes=cfg.window_minutes, ring_weeks=cfg.rate_history_weeks
    )
    base.ring = np.zeros((0, 168, base.ring_weeks), np.int32)
    return base


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)
