"""Live detection for a streaming member (`secretwatch run`): events arrive in small polled
batches, are stored, judged and learned from, and the caller commits its offsets when
`process` returns.

Time is event time. Batches of `batch_minutes` are judged as events arrive (`peek`: alerts
within a poll of the evidence) and learned from once complete (`run`), which is when the
stream's clock (the newest event, less `lateness`) has passed their end. The clock is the
member's, shared by its partitions; the caller may pass a lower one (the slowest partition).

What survives a crash or a rebalance, per owned partition: the baselines of its identities,
the watermark (start of the first batch not yet learned) and its open incidents, all written
by `snapshot`. A new owner loads them and judges again the stored events after the
watermark; alert ids are deterministic, so this re-raises nothing, it only updates. Every
member also loads the baselines of identities it does not own, read-only, because whether
a secret "belongs to others" is knowledge across identities.

Events older than the watermark of their partition (a record re-delivered after a crash, or
later than `lateness`) are stored but not judged: their batch was already learned from.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd

from detectors.alert import Alert, Finding, Incident, alert_id
from detectors.baseline import Baselines
from detectors.engine import Detection
from detectors.events import Events, prepare
from detectors.settings import DetectorsConfig
from pipeline.record import FIELDS, EventRow
from pipeline.store.base import EventFilter, Store
from pipeline.store.duckdb import rows_to_arrow

log = logging.getLogger(__name__)

STATE_PREFIX = "live/"
# The identity owns nothing here (None) or belongs to this partition key, e.g. "events/3".
Owner = Callable[[str], str | None]


def _ts(row: EventRow) -> int:
    return row.ts_us


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
        self.buffer: list[EventRow] = []  # owned events at or after `start`
        self.seen: set[str] = set()  # their ids: a re-delivered record is judged once
        self.touched: set[str] = set()  # identities learned from since the last snapshot
        self.last_snapshot = time.monotonic()
        self.late = 0

    # -- ownership -------------------------------------------------------------------------
    def assign(self, owner: Owner) -> None:
        """Take over the identities `owner` maps to a partition key: load the baselines (of
        every identity: others' are read-only context), the owned partitions' watermarks
        and open incidents, and the stored events after those watermarks."""
        self.owner = owner
        meta_raw = self.store.detection_state("meta")
        meta = orjson.loads(meta_raw) if meta_raw else {}
        trained = meta.pop("watermark_us", None)
        base = (
            Baselines.from_rows(self.store.baselines(), **_meta_args(meta))
            if meta
            else _empty(self.cfg)
        )
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
                incidents.extend(state["incidents"])
        for doc in incidents:
            self.detection.open[doc["identity"]] = _incident(doc)
        marks = list(self.watermarks.values()) or ([trained] if trained else [])
        self.start = min(marks) if marks else None
        self.buffer, self.seen, self.touched = [], set(), set()
        if self.start is not None:
            self._reload(self.start)

    def _reload(self, since_us: int) -> None:
        """Judge again what the previous owner stored but had not learned from."""
        frame = self.store.events(EventFilter(since=_dt(since_us)))
        if frame.empty:
            return
        ts = frame["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy()
        keep = np.array(
            [self._fresh(i, t) for i, t in zip(frame["identity"].fillna(""), ts, strict=True)]
        )
        frame = frame[keep]
        self._add([EventRow(*r) for r in _rows(frame)])
        self._seed_incidents(since_us)

    def _seed_incidents(self, since_us: int) -> None:
        """Alerts raised or grown after the last snapshot keep their ids: re-open them.

        An incident is selected by where it ends, not where it opened: a long one opened
        well before the watermark still takes the findings judged again after it. Alerts
        are few (a handful a day), so all of them are read and the newest incident per
        owned identity wins."""
        gap = int(self.cfg.group_gap_hours * 3_600_000_000)
        latest: dict[str, tuple[int, dict]] = {}
        for body in self.store.alerts().get("body", []):
            doc = orjson.loads(body)
            identity, end = doc["identity"], _us(doc["window_end"])
            if self.owner(identity) is None or identity in self.detection.open:
                continue
            if end >= since_us - gap and end > latest.get(identity, (-1, {}))[0]:
                latest[identity] = (end, doc)
        for identity, (_, doc) in latest.items():
            self.detection.open[identity] = _incident_from_alert(doc)

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
        batch may be committed."""
        if rows and not stored:
            self.store.write_batch(list(rows))
        fresh = [
            r for r in rows if r.event_id not in self.seen and self._fresh(r.identity, r.ts_us)
        ]
        self.late += sum(1 for r in rows if self.owner(r.identity) is not None) - len(fresh)
        changed = self._judge(fresh, clock_us)
        alerts = [i.alert() for i in changed.values()]
        if alerts:
            self.store.save_detection(
                [], {}, [a.model_dump(mode="json") for a in alerts], self.detection.base.version
            )
        if time.monotonic() - self.last_snapshot >= self.snapshot_seconds:
            self.snapshot()
        return alerts

    def _add(self, rows: list[EventRow]) -> None:
        for r in rows:
            self.seen.add(r.event_id)
        self.buffer.extend(rows)
        if self.start is None and self.buffer:
            self.start = min(r.ts_us for r in self.buffer) // self.step * self.step

    def _judge(self, rows: list[EventRow], clock_us: int | None) -> dict[str, Incident]:
        self._add(rows)
        changed: dict[str, Incident] = {}
        if self.start is None or not self.buffer:
            return changed
        self.buffer.sort(key=_ts)
        newest = self.buffer[-1].ts_us
        clock = min(clock_us, newest) if clock_us is not None else newest - self.lateness
        ev = self._prepare(self.buffer)
        ts, lo = ev.ts_us, 0
        # Complete batches: judge and learn, jumping over silent stretches in one step.
        while self.start + self.step <= clock:
            first = int(ts[lo]) if lo < len(ts) else clock
            end = max(self.start + self.step, min(first, clock) // self.step * self.step)
            hi = int(np.searchsorted(ts, end))
            part = ev.slice(lo, hi)
            for incident in self.detection.run(part, self.start, end):
                changed[incident.id] = incident
            self.touched.update(set(part.identity) - {""})
            lo, self.start = hi, end
        if lo:
            self.buffer = self.buffer[lo:]
            ev = ev.slice(lo, len(ev))
            self.seen = {r.event_id for r in self.buffer}
        # Incomplete batches: judge what is there now, learn later.
        ts, lo, start = ev.ts_us, 0, self.start
        while lo < len(ts):
            end = start + self.step
            hi = int(np.searchsorted(ts, end))
            if hi > lo:
                for incident in self.detection.peek(ev.slice(lo, hi), start, end):
                    changed[incident.id] = incident
            lo, start = hi, end
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
                {"watermark_us": self.start, "member": self.member, "incidents": docs},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            for key, docs in incidents.items()
        }
        names = sorted(n for n in self.touched if self.owner(n) is not None)
        self.store.save_detection(base.to_rows(names), state, [], base.version)
        self.watermarks = dict.fromkeys(incidents, self.start)
        self.touched = set()


def _empty(cfg: DetectorsConfig) -> Baselines:
    base = Baselines(
        tz=cfg.timezone, window_minutes=cfg.window_minutes, ring_weeks=cfg.rate_history_weeks
    )
    base.ring = np.zeros((0, 168, base.ring_weeks), np.int32)
    return base


def _meta_args(meta: dict[str, object]) -> dict[str, object]:
    keys = ("tz", "window_minutes", "ring_weeks", "version", "trained_until_us",
            "observed_until_us")
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
    id), carrying the alert's evidence; judging the batches again restores the rest."""
    incident = Incident(doc["identity"], baseline_version=doc["baseline_version"])
    findings = []
    for f in doc["findings"]:
        start = _us(f["window_start"])
        findings.append(
            Finding(
                f["detector"], doc["identity"], start, _us(f["window_end"]), start,
                f["score"], f["threshold"], f["severity"], f["explanation"], (),
            )
        )
    opener = next(
        (f for f in findings if _alert_id(f) == doc["id"]), findings[0] if findings else None
    )
    if opener is None:
        return incident
    incident.add(Finding(**{**asdict(opener), "evidence": tuple(doc["evidence"])}))
    for f in findings:
        if f is not opener:
            incident.add(f)
    return incident


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
