"""Dormant identity returning: a service or person silent far longer than ever before comes
back. Decommissioned services whose credentials were never revoked are a favourite way in.
The silence needed is the larger of a fixed floor and a multiple of the identity's own
longest silence, so people back from a holiday and monthly jobs are not flagged."""

from __future__ import annotations

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural
from detectors.events import HOUR_US
from detectors.finding import finding, hour_window
from detectors.settings import Dormant


def detect(base: Baselines, batch: Batch, cfg: Dormant) -> list[Finding]:
    ev = batch.ev
    findings = []
    for identity, _, pos in batch.groups(batch.rows >= 0):
        r = int(batch.rows[pos[0]])
        if base.active_days[r] < 2:
            continue
        silent = int(ev.day[pos].min() - base.last_day[r]) - 1
        need = max(cfg.min_days, cfg.gap_factor * max(int(base.max_gap_days[r]) - 1, 0))
        score = silent / need
        if score < cfg.threshold:
            continue
        at = batch.first_us(pos)
        first_hour = pos[ev.ts_us[pos] < at + HOUR_US]
        last = np.datetime64(int(base.last_us[r]), "us").astype("datetime64[D]")
        findings.append(
            finding(
                "dormant",
                cfg,
                batch,
                identity=identity,
                span=hour_window(at // HOUR_US),
                evidence=first_hour,  # starts with the event at `at`
                score=score,
                explanation=(
                    f"{identity} came back at {batch.when(at)} after {silent} days of silence "
                    f"(last seen {last}); its longest silence before was "
                    f"{plural(max(int(base.max_gap_days[r]) - 1, 0), 'day')} over "
                    f"{plural(int(base.active_days[r]), 'active day')}."
                ),
            )
        )
    return findings
