"""Judge the cross-identity scenarios of `tests/bench/scenario_gen.py` the way replay and
live detection do: hour batches, optionally peeked every few minutes first (a stream), or
with a restart from the kept incidents halfway (a live member replaced)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from detectors.alert import Alert
from detectors.baseline import Baselines
from detectors.engine import Detection, train
from detectors.events import HOUR_US, Events, prepare
from detectors.incidents import IncidentDoc
from detectors.settings import DetectorsConfig
from pipeline.record import EventRow
from pipeline.store.rows import rows_to_arrow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import scenario_gen as scenario_gen  # noqa: E402 - re-exported for the tests

MINUTE_US = 60_000_000


def events(rows: list[tuple]) -> Events:
    return prepare(rows_to_arrow([EventRow(*r) for r in rows]).to_pandas())


def trained(ev: Events, cut: int, cfg: DetectorsConfig) -> Baselines:
    return train(ev.slice(0, int(np.searchsorted(ev.ts_us, cut))), cfg, cut)


def copy(base: Baselines) -> Baselines:
    fresh = Baselines.from_rows(base.to_rows(), **base.meta())
    fresh.model = base.model
    return fresh


def judge(
    ev: Events,
    base: Baselines,
    cut: int,
    hours: int,
    cfg: DetectorsConfig,
    peek_minutes: int = 0,
    restart_at: int | None = None,
    whole_every: int = 1,
) -> list[Alert]:
    """The alerts of `hours` hour batches from `cut`: every incident's latest alert.
    With `whole_every` > 1 only every so many peeks judge the whole batch seen so far, the
    others only what came since the peek before (`Detection.peek_new`), as a busy stream."""
    detection = Detection(copy(base), cfg)
    for h in range(hours):
        if h == restart_at:  # what a live member keeps: baselines and open incidents
            kept = {i: IncidentDoc.of(inc) for i, inc in detection.open.items()}
            raised = [i.alert() for i in detection.incidents()]
            detection = Detection(copy(detection.base), cfg)
            detection.open = {i: doc.incident() for i, doc in kept.items()}
            done = {a.id for a in raised} - {i.id for i in detection.open.values()}
            closed = [a for a in raised if a.id in done]
        lo_us, hi_us = cut + h * HOUR_US, cut + (h + 1) * HOUR_US
        lo, hi = np.searchsorted(ev.ts_us, [lo_us, hi_us])
        if peek_minutes:
            before = int(lo)
            for n, m in enumerate(range(peek_minutes, 60, peek_minutes)):
                upto = int(np.searchsorted(ev.ts_us, lo_us + m * MINUTE_US))
                seen = ev.slice(int(lo), upto)
                if n % whole_every:
                    detection.peek_new(
                        ev.slice(before, upto),
                        lambda who, most, seen=seen: seen.take(np.isin(seen.identity, who)),
                        lo_us,
                        hi_us,
                        len(ev),
                    )
                else:
                    detection.peek(seen, lo_us, hi_us)
                before = upto
        detection.run(ev.slice(int(lo), int(hi)), lo_us, hi_us)
    alerts = [i.alert() for i in detection.incidents()]
    if restart_at is not None:
        alerts = sorted([*closed, *alerts], key=lambda a: (a.window_start, a.id))
    return alerts
