"""Run one detector on a few events after the training window."""

from __future__ import annotations

from world import after, frame, us

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch
from detectors.engine import DETECTORS
from detectors.events import HOUR_US
from detectors.settings import DetectorsConfig


def judge(
    name: str, base: Baselines, rows: list, cfg: DetectorsConfig | None = None, **overrides: object
) -> list[Finding]:
    cfg = cfg or DetectorsConfig()
    if overrides:
        cfg = cfg.model_copy(update={name: getattr(cfg, name).model_copy(update=overrides)})
    ev = frame(rows)
    start = int(ev.ts_us.min()) // HOUR_US * HOUR_US if len(ev) else us(after(0))
    batch = Batch.of(base, ev, start, start + HOUR_US, cfg)
    return DETECTORS[name](base, batch, getattr(cfg, name))
