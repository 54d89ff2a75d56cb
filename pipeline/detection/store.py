"""Training and detection over the store: `secretwatch train` and `secretwatch detect`.

The baselines, the multivariate model, the open incidents and the detection watermark (the
end of the last batch judged) live in the store and are written in one transaction with the
alerts of each day of batches, so a killed `detect` resumes at the watermark and raises
nothing twice: alert ids are deterministic and upserted.

Events that arrive after the watermark has passed their time are not judged (the store has
no arrival order to find them by); run `detect` after ingest has caught up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from detectors.alert import Alert
from detectors.baseline import Baselines
from detectors.engine import Detection, train
from detectors.events import prepare
from detectors.incidents import IncidentDoc
from detectors.settings import DetectorsConfig
from detectors.stepping import Sliced, cover, step_batches
from pipeline.detection import checkpoint as cp
from pipeline.detection.roles import DetectionStore
from pipeline.errors import StoreError
from pipeline.store.base import EventFilter, Outbox

DAY_US = 86_400_000_000


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def train_store(
    store: DetectionStore, cfg: DetectorsConfig, until: datetime, since: datetime | None = None
) -> Baselines:
    """Learn baselines from the stored events in [since, until) and replace the stored
    ones; detection continues from `until`."""
    events = store.events(EventFilter(since=since, until=until))
    attacks = alert_evidence(store, since, until)
    if attacks:
        events = events[~events["event_id"].isin(attacks)]
    base = train(prepare(events, cfg.timezone, cfg.window_minutes), cfg, _us(until))
    previous = cp.load_meta(store)
    base.version = previous.version + 1 if previous is not None else 1
    base.trained_until_us = base.observed_until_us = _us(until)
    state = {
        cp.META: cp.Meta.of(base, _us(until)).encode(),
        cp.INCIDENTS: cp.encode_incidents(()),
        cp.MODEL: cp.encode_model(base.model),
    }
    store.save_detection(base.to_rows(), state, [], base.version, replace=True)
    return base


def alert_evidence(
    store: Outbox, since: datetime | None = None, until: datetime | None = None
) -> set[str]:
    """The evidence of the stored alerts in a window, except those an analyst resolved as
    false positives: a retrain must not learn an attack as normal, but should learn what
    was wrongly flagged."""
    alerts = store.alerts(since=since, until=until)
    if "resolution" in alerts:
        alerts = alerts[alerts["resolution"].fillna("") != "false_positive"]
    return {e for body in alerts["body"] for e in orjson.loads(body)["evidence"]}


def load_detection(store: DetectionStore, cfg: DetectorsConfig) -> tuple[Detection, int]:
    """The stored detection state and its watermark (µs)."""
    meta = cp.load_meta(store)
    if meta is None:
        raise StoreError("the store holds no baselines yet; run `secretwatch train` first")
    detection = Detection(cp.load_baselines(store, cfg, meta), cfg)
    for doc in cp.decode_incidents(store.detection_state(cp.INCIDENTS)):
        detection.open[doc.identity] = doc.incident()
    return detection, meta.watermark_us


def detect_store(
    store: DetectionStore,
    cfg: DetectorsConfig,
    until: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
    horizon: datetime | None = None,
) -> list[Alert]:
    """Judge the stored events from the watermark on, in batches; store a day of batches at
    a time; return the alerts raised or grown.

    Events after `horizon` (the clock plus the skew the ingest allows) are implausible: a
    store written before they were quarantined may hold one dated in the year 9999, and
    walking towards it would move the watermark past every real event still to come. They
    are neither judged nor allowed to move the watermark."""
    detection, watermark = load_detection(store, cfg)
    end_us = _us(until) if until is not None else None
    if horizon is not None:
        until = horizon if until is None else min(until, horizon)
    since = datetime.fromtimestamp(watermark / 1e6, tz=UTC)
    events = store.events(EventFilter(since=since, until=until))
    ev = prepare(events, cfg.timezone, cfg.window_minutes)
    step = cfg.batch_minutes * 60_000_000
    if end_us is None:
        end_us = cover(watermark, int(ev.ts_us[-1]), step) if len(ev) else watermark
    span = max(step, DAY_US // step * step)  # a day of batches per store step
    changed: dict[str, Alert] = {}
    touched: dict[str, Alert] = {}
    identities: set[str] = set()
    chunk_end = min(end_us, watermark + span)
    for done in step_batches(detection, Sliced(ev), watermark, end_us, step):
        identities.update(set(done.events.identity))
        for incident in done.changed:
            touched[incident.id] = incident.alert()
        if on_batch is not None:
            on_batch(len(done.events))
        if done.end_us + step > chunk_end:  # the day is done: store it
            _save(store, detection, done.end_us, identities, touched)
            changed.update(touched)
            touched, identities = {}, set()
            chunk_end = min(end_us, done.end_us + span)
    return sorted(changed.values(), key=lambda a: (a.timestamp, a.id))


def _save(
    store: DetectionStore,
    detection: Detection,
    watermark_us: int,
    identities: set[str],
    alerts: dict[str, Alert],
) -> None:
    """One store step: the baselines learned, the watermark, the open incidents, the
    alerts raised or grown."""
    base = detection.base
    identities.discard("")
    state = {
        cp.META: cp.Meta.of(base, watermark_us).encode(),
        cp.INCIDENTS: cp.encode_incidents(
            tuple(IncidentDoc.of(i) for i in detection.open.values())
        ),
    }
    store.save_detection(
        base.to_rows(sorted(identities)),
        state,
        [a.model_dump(mode="json") for a in alerts.values()],
        base.version,
    )
