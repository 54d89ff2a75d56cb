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
from detectors.hourly import expected_requests, recent, trailing_run, weekly_requests
from detectors.settings import SustainedRate


def detect(base: Baselines, batch: Batch, cfg: SustainedRate) -> list[Finding]:
    seen = recent(base, batch, cfg.max_hours)
    if seen is None:
        return []
    # A cheap first pass against the weekly norm alone (the full norm is at least that):
    # the last `min_hours` hours must all be above it, which few identities ever are.
    last = seen.hours[:, -cfg.min_hours :]
    weekly = weekly_requests(base, np.broadcast_to(seen.rows[:, None], last.shape), last)
    floor = np.maximum(np.nan_to_num(weekly, nan=np.inf), cfg.min_expected)
    floor[:, -1] *= seen.covered
    held = (seen.requests[:, -cfg.min_hours :] >= cfg.min_ratio * floor).all(axis=1)
    candidates = np.flatnonzero(held)
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
        pos = seen.positions(i)
        start = int(hours[k, -n])
        evidence = pos[batch.ev.uhour[pos] >= start]
        identity = str(seen.identity[i])
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
