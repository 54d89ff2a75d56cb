"""Sustained rate: requests held at several times the identity's seasonal norm for hours.
A scraper paced at three to five times the usual rate, or a stolen credential put to work
next to the real service, never makes the single sharp hour rate_spike needs; held for
three hours or more it stands out. Each hour of the run must be well above its own norm
(the same weekday hour in earlier weeks, or the same hour on any day), their geometric
mean above the threshold, and the excess beyond chance (a Poisson z-score), so normal
daily swings and one busy hour stay quiet."""

from __future__ import annotations

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural
from detectors.events import HOUR_US
from detectors.finding import finding
from detectors.hourly import expected_requests, recent, trailing_run
from detectors.settings import SustainedRate


def detect(base: Baselines, batch: Batch, cfg: SustainedRate) -> list[Finding]:
    seen = recent(base, batch, cfg.max_hours)
    if seen is None:
        return []
    # The hour in progress first: most identities are not above their norm now.
    now = expected_requests(base, seen.rows, seen.hours[:, -1], cfg.daily_weight)
    floor = np.maximum(np.nan_to_num(now, nan=np.inf), cfg.min_expected) * seen.covered
    candidates = np.flatnonzero(seen.requests[:, -1] >= cfg.min_ratio * floor)
    if not len(candidates):
        return []
    hours = seen.hours[candidates]
    rows = np.broadcast_to(seen.rows[candidates, None], hours.shape)
    norm = np.maximum(expected_requests(base, rows, hours, cfg.daily_weight), cfg.min_expected)
    norm[:, -1] *= seen.covered[candidates]
    observed = seen.requests[candidates]
    run = trailing_run(observed >= cfg.min_ratio * norm)
    findings = []
    for k in np.flatnonzero(run >= cfg.min_hours):
        n = int(run[k])
        got, want = observed[k, -n:], norm[k, -n:]
        score = float(np.exp(np.mean(np.log(got / want))))
        total, expected = int(got.sum()), float(want.sum())
        z = (total - expected) / np.sqrt(expected)
        if score < cfg.threshold or total < cfg.min_count or z < cfg.min_z:
            continue
        i = int(candidates[k])
        pos = seen.positions[i]
        start = int(hours[k, -n])
        evidence = pos[batch.ev.uhour[pos] >= start]
        identity = seen.identity[i]
        findings.append(
            finding(
                "sustained_rate",
                cfg,
                batch,
                identity=identity,
                span=(start * HOUR_US, (int(hours[k, -1]) + 1) * HOUR_US),
                evidence=evidence,
                score=score,
                explanation=(
                    f"{identity} made {plural(total, 'request')} in the {n} hours from "
                    f"{batch.when(start * HOUR_US)}, {score:.1f}x its seasonal norm of about "
                    f"{expected:.0f} for those hours (each hour at least {cfg.min_ratio:g}x its "
                    f"own: {', '.join(str(int(c)) for c in got)}); a rise held this long is not "
                    "a passing peak."
                ),
            )
        )
    return findings
