"""Live detection for a streaming member (`secretwatch run`): events arrive in small polled
batches, are stored, judged and learned from, and the caller commits its offsets when
`process` returns.

Time is event time. Batches of `batch_minutes` are judged as events arrive (`peek`: alerts
within a poll of the evidence) and learned from once complete (`run`), which is when the
stream's clock (the newest event, less `lateness`) has passed their end. The clock is the
member's, shared by its partitions; the caller may pass a lower one (the slowest partition).

Only the first batch not yet learned from is peeked: a later one would be judged against
baselines that have not learned the batches before it (findings the complete batch does not
confirm) and its findings would be grouped ahead of theirs (an incident closed too early,
then split). When the clock lags behind the newest events (a slow partition), their alerts
wait for it.

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

Events older than the watermark of their partition (a record re-delivered after a crash, or
later than `lateness`) are stored but not judged: their batch was already learned from. A
copy of an event this member learned from lately (read again after a rebalance) is known
as such and not counted late.
Those a reload would judge again (newer than the last snapshot's watermark) are listed in
the store, per partition (`live/<key>/late`, cleared by the next snapshot), and stay unjudged
after a reload, in the store and when delivered again: judged there, a late event could open
an incident earlier than a stored one and then take in the findings of that one, raising
one incident twice. For the same reason a reload first learns again up to where learning
had got when they came late (the list keeps it; after a failed `process`, the start of
that call): the clock may go back (a caught-up partition receives records again), and
events it came late to must not turn fresh.

Each event is prepared for the detectors once, when it arrives (`prepare` costs more than
judging): each poll's events are kept as one prepared chunk, and a batch is cut out of the
chunks, in time order, when it is judged. The first incomplete batch is judged again only
when a poll added to it or the batches before it were learned from.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from dataclasses import replace as _replace
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd

from detectors.alert import Alert, Finding, Incident, alert_id
from detectors.baseline import Baselines
from detectors.engine import Detection
from detectors.events import HOUR_US, Events, prepare
from detectors.settings import DetectorsConfig
from pipeline.record import FIELDS, EventRow
from pipeline.store.base import EventFilter, Store
from pipeline.store.duckdb import rows_to_arrow

log = logging.getLogger(__name__)

STATE_PREFIX = "live/"
ORIGIN = STATE_PREFIX + "origin"  # where live detection began, until a snapshot says more
LATE = "/late"  # STATE_PREFIX + key + LATE: late events a reload must not judge, and where
# learning had got when they came
# The identity owns nothing here (None) or belongs to this partition key, e.g. "events/3".
Owner = Callable[[str], str | None]


def _order(row: EventRow) -> tuple[int, str]:
    return row.ts_us, row.event_id


_FIELDS = [f.name for f in fields(Events)]
MAX_CHUNKS = 32  # prepared chunks kept apart before they are merged into one
LEARNED_KEPT = 200_000  # ids of events learned from, kept to tell a copy from a late event


class LiveDetection:
    """Detection state of one streaming member over the identities it owns."""

    def __init__(
        self,
        store: Store,
        cfg: DetectorsConfig,
        member: str,
        lateness_seconds: float = 60.0,
        snapshot_seconds: float = 30.0,
    ) -> None:
        self.store, self.cfg, self.member = store, cfg, member
        self.step = cfg.batch_minutes * 60_000_000
        self.lateness = int(lateness_seconds * 1_000_000)
        self.snapshot_seconds = snapshot_seconds
        self.owner: Owner = lambda identity: None
        self.detection = Detection(_empty(cfg), cfg)
        self.start: int | None = None  # first batch not yet learned from
        self.watermarks: dict[str, int] = {}  # partition key -> its own watermark
        # Owned events at or after `start`, prepared, one chunk per poll, each in (time, id)
        # order; grouping codes are not comparable between chunks (see `_recode`).
        self.none: Events = self._prepare([])
        self.chunks: list[Events] = []
        self.seen: set[str] = set()  # their ids: a re-delivered record is judged once
        # Ids of the last LEARNED_KEPT events learned from: one delivered again (read again
        # after a rebalance) was judged, it did not come late. Cleared by a reload.
        self.learned: dict[str, None] = {}
        self.peeked: tuple[int, int] | None = None  # (batch start, events) judged last
        self.touched: set[str] = set()  # identities learned from since the last snapshot
        self.unsaved: dict[str, Incident] = {}  # changed, their alerts not stored yet
        self.floor: int | None = None  # where a reload judges again from (see `_replayed`)
        # Late events since `floor`: event id -> (partition key, an identity of that key).
        self.late: dict[str, tuple[str, str]] = {}
        self.late_saved: set[str] = set()  # keys whose late events are listed in the store
        self.late_unsaved: set[str] = set()  # keys whose list in the store lacks some
        self.entry_start: int | None = None  # `start` when `process` was last called
        self.failed = False  # that call raised: the state may hold part of its batch
        self.last_snapshot = time.monotonic()
        self.late_count = 0  # owned events that came late (stored, not judged)

    # -- ownership -------------------------------------------------------------------------
    def assign(self, owner: Owner) -> None:
        """Take over the identities `owner` maps to a partition key: load the baselines (of
        every identity: others' are read-only context), the owned partitions' watermarks
        and open incidents, the stored alerts that judging again may reach, and the stored
        events after those watermarks. Also the way back after `process` failed half-way:
        whatever it had changed is replaced by what the store holds."""
        self.owner = owner
        meta_raw = self.store.detection_state("meta")
        meta = orjson.loads(meta_raw) if meta_raw else {}
        trained = meta.pop("watermark_us", None)
        # Without training (`secretwatch run` from scratch) the snapshots' baselines are all
        # there is; they are read with the configured layout.
        args = (
            _meta_args(meta)
            if meta
            else {
                "tz": self.cfg.timezone,
                "window_minutes": self.cfg.window_minutes,
                "ring_weeks": self.cfg.rate_history_weeks,
            }
        )
        base = Baselines.from_rows(self.store.baselines(), **args)
        model = self.store.detection_state("model")
        # The store is trusted as much as the code that wrote it (same owner, same host).
        base.model = pickle.loads(model) if model else None  # noqa: S301
        self.detection = Detection(base, self.cfg)
        self.watermarks, incidents = {}, []
        owned_keys = {owner(name) for name in base.names} - {None}
        for key in sorted(k for k in owned_keys if k is not None):
            raw = self.store.detection_state(STATE_PREFIX + key)
            if raw is not None:
                state = orjson.loads(raw)
                self.watermarks[key] = state["watermark_us"]
                base.version = max(base.version, state.get("version", 0))
                incidents.extend(state["incidents"])
        for doc in incidents:
            loaded = self.detection.open[doc["identity"]] = _incident(doc)
            self.detection.raised.add(loaded.id)
        marks = list(self.watermarks.values()) or ([trained] if trained else [])
        if not marks:
            marks = self._origin()
        self.start = min(marks) if marks else None
        if self.start is not None:
            base.observed_until_us = max(base.observed_until_us, self.start)
        self.chunks, self.seen, self.touched, self.unsaved = [], set(), set(), {}
        self.learned = {}
        # Which events came late is a fact about their arrival, which the store does not
        # keep: those not listed in the store yet (their listing failed) are kept, and so
        # is where learning had got when a failed `process` began.
        self.late = {e: (k, i) for e, (k, i) in self.late.items() if owner(i) == k}
        self.peeked, self.floor = None, self.start
        if self.start is not None:
            reached = [self._reload(self.start), self.entry_start if self.failed else None]
            if progress := [r for r in reached if r is not None]:
                self.unsaved.update(self._run(max(progress)))
        else:
            self.late, self.late_saved, self.late_unsaved = {}, set(), set()
        self.failed = False

    def _origin(self) -> list[int]:
        """Where judging again starts when no owned partition has a snapshot: where live
        detection began, if an owned identity has events since (its owner may have died
        before its first snapshot); otherwise nothing is owed."""
        raw = self.store.detection_state(ORIGIN)
        if raw is None:
            return []
        origin = orjson.loads(raw)["watermark_us"]
        found = self.store.stats("identity", EventFilter(since=_dt(origin)))
        identities = found["identity"].dropna() if "identity" in found else []
        return [origin] if any(self.owner(i) is not None for i in identities) else []

    def _reload(self, since_us: int) -> int | None:
        """Buffer again what the previous owner stored but had not learned from, except the
        events that came late (listed in the store, or in `late` if their listing
        failed); return where learning had got when they came."""
        self._known_incidents(since_us)
        frame = self.store.events(EventFilter(since=_dt(since_us)))
        identities = frame["identity"].fillna("") if not frame.empty else pd.Series([])
        carried = self.late
        keys = {k: i for i in set(identities) if (k := self.owner(i)) is not None}
        keys.update({k: i for k, i in carried.values()})
        late: dict[str, tuple[str, str]] = {}
        saved: set[str] = set()
        progress: list[int] = []
        for key, identity in sorted(keys.items()):
            raw = self.store.detection_state(STATE_PREFIX + key + LATE)
            doc = orjson.loads(raw) if raw is not None else {}
            if doc.get("late"):
                late.update(dict.fromkeys(doc["late"], (key, identity)))
                saved.add(key)
            if doc.get("start") is not None:
                progress.append(doc["start"])
        unsaved = {k for e, (k, _) in carried.items() if e not in late}
        late.update({e: v for e, v in carried.items() if e not in late})
        self.late, self.late_saved, self.late_unsaved = late, saved, unsaved
        if not frame.empty:
            ts = frame["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
            keep = np.array([self._fresh(i, t) for i, t in zip(identities, ts, strict=True)])
            if late:
                keep &= ~frame["event_id"].isin(list(late)).to_numpy()
            frame = frame[keep]
            self._add([EventRow(*r) for r in _rows(frame)])
        return max(progress, default=None)

    def _known_incidents(self, since_us: int) -> None:
        """The stored alerts of owned identities that findings judged again after `since_us`
        may join: the snapshot's open incident takes its newer findings from its own
        alert; the others (raised after the snapshot, or before a reload) become
        `Detection.known`, re-opened under their ids when judging again reaches them.
        Alerts are few (a handful a day), so all of them are read."""
        gap = int(self.cfg.group_gap_hours * HOUR_US)
        horizon = since_us - HOUR_US - gap  # see Detection.run
        known: dict[str, list[Incident]] = {}
        for body in self.store.alerts().get("body", []):
            doc = orjson.loads(body)
            identity = doc["identity"]
            if self.owner(identity) is None or _us(doc["window_end"]) < horizon:
                continue
            stored = _incident_from_alert(doc)
            if not stored.findings:
                continue
            current = self.detection.open.get(identity)
            if current is not None and current.id == stored.id:
                _merge(current, stored)
            else:
                known.setdefault(identity, []).append(stored)
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
        if rows and not stored:
            self.store.write_batch(list(rows))
        fresh = []
        for r in rows:
            key = self.owner(r.identity)
            if key is None or r.event_id in self.seen or r.event_id in self.learned:
                continue
            if r.event_id in self.late:  # delivered again
                self.late_count += 1
            elif self._fresh(r.identity, r.ts_us):
                fresh.append(r)
            else:
                self.late_count += 1
                if self._replayed(key, r.ts_us):
                    self.late[r.event_id] = (key, r.identity)
                    self.late_unsaved.add(key)
        if self.late_unsaved:  # listed before any alert judged without them is stored
            self._save_late()
        if self.start is None and fresh:
            self._save_origin(min(r.ts_us for r in fresh) // self.step * self.step)
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

    def _replayed(self, key: str, ts_us: int) -> bool:
        """Would a reload from the store judge an event of partition `key` at `ts_us`?"""
        mark = self.watermarks.get(key, self.floor)
        return mark is None or ts_us >= mark

    def _save_late(self) -> None:
        lists: dict[str, list[str]] = {key: [] for key in self.late_unsaved}
        for event_id, (key, _) in self.late.items():
            if key in lists:
                lists[key].append(event_id)
        state = {
            STATE_PREFIX + key + LATE: orjson.dumps({"start": self.start, "late": sorted(ids)})
            for key, ids in lists.items()
        }
        self.store.save_detection([], state, [], self.detection.base.version)
        self.late_saved.update(self.late_unsaved)
        self.late_unsaved = set()

    def _save_origin(self, start_us: int) -> None:
        """Nothing tells where live detection began until the first snapshot: store it, so
        that an owner taking over before then judges again from there."""
        raw = self.store.detection_state(ORIGIN)
        if raw is not None:
            start_us = min(start_us, orjson.loads(raw)["watermark_us"])
        state = {ORIGIN: orjson.dumps({"watermark_us": start_us, "member": self.member})}
        self.store.save_detection([], state, [], self.detection.base.version)

    def _add(self, rows: list[EventRow]) -> None:
        """Prepare new events, as one more chunk."""
        if not rows:
            return
        self.seen.update(r.event_id for r in rows)
        self.chunks.append(self._prepare(sorted(rows, key=_order)))
        if len(self.chunks) > MAX_CHUNKS:
            self.chunks = [_ordered(self.chunks, self.none)]
        if self.start is None:
            first = min(int(c.ts_us[0]) for c in self.chunks)
            self.start = self.floor = first // self.step * self.step
            self.detection.base.observed_until_us = max(
                self.detection.base.observed_until_us, self.start
            )

    @property
    def buffer(self) -> Events:
        """The events not learned from yet, in (time, id) order."""
        return _ordered(self.chunks, self.none)

    def _before(self, end_us: int, take: bool) -> Events:
        """The buffered events before `end_us`, in (time, id) order; `take`: out of the
        buffer (learned from)."""
        parts, kept = [], []
        for c in self.chunks:
            cut = int(np.searchsorted(c.ts_us, end_us))
            if cut:
                parts.append(c.slice(0, cut))
            if take:
                if cut:
                    ids = c.event_id[:cut].tolist()
                    self.seen.difference_update(ids)
                    self.learned.update(dict.fromkeys(ids))
                if cut < len(c):
                    kept.append(c.slice(cut, len(c)) if cut else c)
        if take:
            self.chunks = kept
            if len(self.learned) > 2 * LEARNED_KEPT:
                self.learned = dict.fromkeys(list(self.learned)[-LEARNED_KEPT:])
        return _ordered(parts, self.none)

    def _judge(self, rows: list[EventRow], clock_us: int | None) -> dict[str, Incident]:
        self._add(rows)
        changed: dict[str, Incident] = {}
        if self.start is None or not self.chunks:
            return changed
        newest = max(int(c.ts_us[-1]) for c in self.chunks)
        clock = min(clock_us, newest) if clock_us is not None else newest - self.lateness
        changed.update(self._run(clock))
        # The first incomplete batch: judge what is there now, learn later. Later batches
        # wait for it (see the module's docstring). Judged again only if it changed.
        end = self.start + self.step
        count = sum(int(np.searchsorted(c.ts_us, end)) for c in self.chunks)
        if count and self.peeked != (self.start, count):
            part = _recode(self._before(end, take=False))
            for incident in self.detection.peek(part, self.start, end):
                changed[incident.id] = incident
            self.peeked = (self.start, count)
        return changed

    def _run(self, clock_us: int) -> dict[str, Incident]:
        """Judge and learn from the complete batches (ending by `clock_us`), jumping over
        silent stretches in one step."""
        changed: dict[str, Incident] = {}
        while self.start is not None and self.start + self.step <= clock_us:
            first = min((int(c.ts_us[0]) for c in self.chunks), default=clock_us)
            end = max(self.start + self.step, min(first, clock_us) // self.step * self.step)
            part = _recode(self._before(end, take=True))
            for incident in self.detection.run(part, self.start, end):
                changed[incident.id] = incident
            self.touched.update(set(part.identity) - {""})
            self.start = end
        return changed

    def _prepare(self, rows: list[EventRow]) -> Events:
        return prepare(rows_to_arrow(rows).to_pandas(), self.cfg.timezone, self.cfg.window_minutes)

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
        incidents: dict[str, list[dict[str, object]]] = {k: [] for k in keys if k is not None}
        for identity, incident in self.detection.open.items():
            key = self.owner(identity)
            if key is not None:
                incidents.setdefault(key, []).append(_incident_doc(incident))
        state = {
            STATE_PREFIX + key: orjson.dumps(
                {
                    "watermark_us": self.start,
                    "member": self.member,
                    "version": base.version,
                    "incidents": docs,
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            for key, docs in incidents.items()
        }
        # The late events listed so far are older than the new watermark.
        state.update({STATE_PREFIX + key + LATE: b'{"late": []}' for key in self.late_saved})
        names = sorted(n for n in self.touched if self.owner(n) is not None)
        self.store.save_detection(base.to_rows(names), state, [], base.version)
        self.watermarks = dict.fromkeys(incidents, self.start)
        self.touched = set()
        self.floor, self.late, self.late_saved, self.late_unsaved = self.start, {}, set(), set()


def _ordered(chunks: list[Events], none: Events) -> Events:
    """Chunks of prepared events, each in (time, id) order, as one in that order."""
    if not chunks:
        return none
    if len(chunks) == 1:
        return chunks[0]
    ev = Events(**{f: np.concatenate([getattr(c, f) for c in chunks]) for f in _FIELDS})
    return ev.take(_time_order(ev.ts_us, ev.event_id))


def _time_order(ts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The (time, id) order of events: by time (integers, fast), then the few runs of equal
    times by id."""
    order = np.argsort(ts, kind="stable")
    same = ts[order]
    same = same[1:] == same[:-1]
    if same.any():
        starts = np.flatnonzero(np.r_[True, ~same])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(
            starts[ends - starts > 1].tolist(), ends[ends - starts > 1].tolist(), strict=True
        ):
            run = order[a:b]
            order[a:b] = run[np.argsort(ids[run], kind="stable")]
    return order


def _recode(ev: Events) -> Events:
    """Events with grouping codes computed over them all (`prepare` numbers identities,
    secrets, networks and clients per call, so codes from two calls do not match)."""
    return _replace(
        ev,
        icode=pd.factorize(ev.identity)[0].astype(np.int64),
        scode=pd.factorize(ev.secret)[0].astype(np.int64),
        ncode=pd.factorize(ev.net)[0].astype(np.int64),
        ccode=pd.factorize(ev.client)[0].astype(np.int64),
    )


def _empty(cfg: DetectorsConfig) -> Baselines:
    base = Baselines(
        tz=cfg.timezone, window_minutes=cfg.window_minutes, ring_weeks=cfg.rate_history_weeks
    )
    base.ring = np.zeros((0, 168, base.ring_weeks), np.int32)
    return base


def _meta_args(meta: dict[str, object]) -> dict[str, object]:
    keys = (
        "tz",
        "window_minutes",
        "ring_weeks",
        "version",
        "trained_until_us",
        "observed_until_us",
    )
    return {k: meta[k] for k in keys if k in meta}


def _incident_doc(incident: Incident) -> dict[str, object]:
    return {
        "identity": incident.identity,
        "baseline_version": incident.baseline_version,
        "findings": [asdict(f) for f in incident.findings],
    }


def _incident(doc: dict) -> Incident:
    incident = Incident(doc["identity"], baseline_version=doc["baseline_version"])
    for f in doc["findings"]:
        incident.add(Finding(**{**f, "evidence": tuple(f["evidence"])}))
    return incident


def _incident_from_alert(doc: dict) -> Incident:
    """An incident rebuilt from its stored alert: the opening finding first (it gives the
    id), carrying the alert's evidence (the alert keeps no evidence per finding); judging
    the batches again restores the rest. A finding's first evidence is not kept either:
    none is earlier than the alert's timestamp (the earliest of them)."""
    incident = Incident(doc["identity"], baseline_version=doc["baseline_version"])
    first = _us(doc["timestamp"])
    findings = []
    for f in doc["findings"]:
        start = _us(f["window_start"])
        findings.append(
            Finding(
                f["detector"],
                doc["identity"],
                start,
                _us(f["window_end"]),
                max(start, first),
                f["score"],
                f["threshold"],
                f["severity"],
                f["explanation"],
                (),
            )
        )
    opener = next(
        (f for f in findings if _alert_id(f) == doc["id"]), findings[0] if findings else None
    )
    if opener is None:
        return incident
    incident.add(_replace(opener, evidence=tuple(doc["evidence"])))
    for f in findings:
        if f is not opener:
            incident.add(f)
    return incident


def _merge(current: Incident, stored: Incident) -> None:
    """Add to a snapshot's incident what its stored alert, written later, adds: findings
    (without evidence of their own: judging again restores it) and the evidence not
    covered by the snapshot's findings, carried by the opener as in `_incident_from_alert`."""
    have = {e for f in current.findings for e in f.evidence}
    for f in stored.findings:
        if f.key not in current.keys:
            current.add(_replace(f, evidence=()))
    missing = tuple(e for e in stored.findings[0].evidence if e not in have)
    if missing:
        opener = current.findings[0]
        current.findings[0] = _replace(opener, evidence=opener.evidence + missing)


def _alert_id(f: Finding) -> str:
    return alert_id(f.detector, f.identity, f.start_us)


def _rows(frame: pd.DataFrame) -> list[tuple]:
    """Store frame -> EventRow tuples (NaN/None -> None)."""
    columns: list[list] = []
    for name in FIELDS:
        if name == "ts_us":
            columns.append(frame["ts"].astype("datetime64[us, UTC]").astype("int64").tolist())
        elif name in frame:
            columns.append([v if isinstance(v, str) else None for v in frame[name].tolist()])
        else:
            columns.append([None] * len(frame))
    return list(zip(*columns, strict=True))


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


def _us(text: str) -> int:
    """Exact microseconds since the epoch (a float timestamp can be off by one)."""
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
