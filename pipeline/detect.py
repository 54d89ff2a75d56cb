"""Training and detection over the store: `secretwatch train` and `secretwatch detect`.

The baselines, the multivariate model, the open incidents and the detection watermark (the
end of the last batch judged) live in the store and are written in one transaction with the
alerts of each day of batches, so a killed `detect` resumes at the watermark and raises
nothing twice: alert ids are deterministic and upserted.

Events that arrive after the watermark has passed their time are not judged (the store has
no arrival order to find them by); run `detect` after ingest has caught up.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

import numpy as np
import orjson

from detectors.alert import Alert, Finding, Incident
from detectors.baseline import Baselines
from detectors.engine import Detection, train
from detectors.events import prepare
from detectors.settings import DetectorsConfig
from pipeline.errors import StoreError
from pipeline.store.base import EventFilter, Store

DAY_US = 86_400_000_000


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def train_store(
    store: Store, cfg: DetectorsConfig, until: datetime, since: datetime | None = None
) -> Baselines:
    """Learn baselines from the stored events in [since, until) and replace the stored
    ones; detection continues from `until`."""
    events = store.events(EventFilter(since=since, until=until))
    attacks = alert_evidence(store, since, until)
    if attacks:
        events = events[~events["event_id"].isin(attacks)]
    base = train(prepare(events, cfg.timezone, cfg.window_minutes), cfg, _us(until))
    previous = store.detection_state("meta")
    base.version = (orjson.loads(previous)["version"] + 1) if previous else 1
    base.trained_until_us = base.observed_until_us = _us(until)
    state = {"meta": _meta(base, _us(until)), "incidents": b"[]", "model": pickle.dumps(base.model)}
    store.save_detection(base.to_rows(), state, [], base.version, replace=True)
    return base


def alert_evidence(
    store: Store, since: datetime | None = None, until: datetime | None = None
) -> set[str]:
    """The evidence of the stored alerts in a window, except those an analyst resolved as
    false positives: a retrain must not learn an attack as normal, but should learn what
    was wrongly flagged."""
    alerts = store.alerts(since=since, until=until)
    if "resolution" in alerts:
        alerts = alerts[alerts["resolution"].fillna("") != "false_positive"]
    return {e for body in alerts["body"] for e in orjson.loads(body)["evidence"]}


def load_detection(store: Store, cfg: DetectorsConfig) -> tuple[Detection, int]:
    """The stored detection state and its watermark (µs)."""
    raw = store.detection_state("meta")
    if raw is None:
        raise StoreError("the store holds no baselines yet; run `secretwatch train` first")
    meta = orjson.loads(raw)
    watermark = meta.pop("watermark_us")
    stored = (meta["window_minutes"], meta["tz"], meta["ring_weeks"])
    wanted = (cfg.window_minutes, cfg.timezone, cfg.rate_history_weeks)
    if stored != wanted:
        raise StoreError(
            "the stored baselines were trained with detectors.window_minutes="
            f"{stored[0]}, detectors.timezone={stored[1]} and detectors.rate_history_weeks="
            f"{stored[2]}; the config says {wanted[0]}, {wanted[1]} and {wanted[2]}. Run "
            "`secretwatch train` again, or restore those settings"
        )
    try:
        base = Baselines.from_rows(store.baselines(), **meta)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    model = store.detection_state("model")
    # The store file is trusted as much as the code that wrote it (same owner, same host).
    base.model = pickle.loads(model) if model else None  # noqa: S301
    detection = Detection(base, cfg)
    for doc in orjson.loads(store.detection_state("incidents") or b"[]"):
        incident = Incident(doc["identity"], baseline_version=doc["baseline_version"])
        for f in doc["findings"]:
            incident.add(Finding(**{**f, "evidence": tuple(f["evidence"])}))
        detection.open[incident.identity] = incident
    return detection, watermark


def detect_store(
    store: Store,
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
    ts = ev.ts_us
    step = cfg.batch_minutes * 60_000_000
    if end_us is None:
        end_us = (
            watermark + ((int(ts[-1]) - watermark) // step + 1) * step if len(ts) else watermark
        )
    changed: dict[str, Alert] = {}
    start, lo = watermark, 0
    while start + step <= end_us:
        chunk_end = min(end_us, start + max(step, DAY_US // step * step))
        touched: dict[str, Alert] = {}
        identities: set[str] = set()
        while start + step <= chunk_end:
            hi = int(np.searchsorted(ts, start + step))
            part = ev.slice(lo, hi)
            identities.update(set(part.identity))
            for incident in detection.run(part, start, start + step):
                touched[incident.id] = incident.alert()
            if on_batch is not None:
                on_batch(hi - lo)
            lo, start = hi, start + step
        base = detection.base
        identities.discard("")
        state = {
            "meta": _meta(base, start),
            "incidents": orjson.dumps(
                [_incident_doc(i) for i in detection.open.values()],
                option=orjson.OPT_SERIALIZE_NUMPY,
            ),
        }
        store.save_detection(
            base.to_rows(sorted(identities)),
            state,
            [a.model_dump(mode="json") for a in touched.values()],
            base.version,
        )
        changed.update(touched)
    return sorted(changed.values(), key=lambda a: (a.timestamp, a.id))


def _meta(base: Baselines, watermark_us: int) -> bytes:
    return orjson.dumps({**base.meta(), "watermark_us": watermark_us})


def _incident_doc(incident: Incident) -> dict[str, object]:
    return {
        "identity": incident.identity,
        "baseline_version": incident.baseline_version,
        "findings": [asdict(f) for f in incident.findings],
    }
