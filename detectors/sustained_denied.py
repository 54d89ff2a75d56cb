"""Sustained denials: permission-denied answers spread thinly over hours, far above the
identity's usual share. Probing paced at one attempt every ten minutes never reaches
denied_burst's floors, but three hours or more of it, from an identity denied about once a
day, is no misconfiguration. A service that is denied all the time has that in its norm."""

from __future__ import annotations

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.events import HOUR_US
from detectors.finding import finding
from detectors.hourly import recent, trailing_run
from detectors.settings import SustainedDenied


def denials_per_hour(base: Baselines, rows: np.ndarray) -> np.ndarray:
    """Each identity's denials per hour of its history (one added, so a clean record still
    has a small norm rather than none)."""
    span = np.maximum(base.observed_until_us - base.first_us[rows], 24 * HOUR_US) / HOUR_US
    rate: np.ndarray = (base.denied_events[rows] + 1) / span
    return rate


def detect(base: Baselines, batch: Batch, cfg: SustainedDenied) -> list[Finding]:
    if not batch.ev.denied.any():
        return []
    seen = recent(base, batch, cfg.max_hours)
    if seen is None:
        return []
    norm = denials_per_hour(base, seen.rows)
    need = np.maximum(cfg.min_per_hour, cfg.threshold * norm)[:, None] * np.ones(cfg.max_hours)
    need[:, -1] *= seen.covered
    run = trailing_run(seen.denied >= need)
    findings = []
    for i in np.flatnonzero(run >= cfg.min_hours):
        n = int(run[i])
        got = seen.denied[i, -n:]
        score = float(np.exp(np.mean(np.log(got / norm[i]))))
        start = int(seen.hours[i, -n])
        pos = seen.positions(int(i))
        ev = batch.ev
        evidence = pos[ev.denied[pos] & (ev.uhour[pos] >= start)]
        if not len(evidence):
            continue
        identity = str(seen.identity[i])
        total = int(got.sum())
        minutes = 60 * n / total
        paths = {s for s in ev.secret[evidence] if s}
        findings.append(
            finding(
                "sustained_denied",
                cfg,
                batch,
                identity=identity,
                span=(start * HOUR_US, (int(seen.hours[i, -1]) + 1) * HOUR_US),
                evidence=evidence,
                score=score,
                explanation=(
                    f"{identity} was denied {plural(total, 'time')} in the {n} hours from "
                    f"{batch.when(start * HOUR_US)} (about one every {minutes:.0f} minutes, "
                    f"lately on {sample(paths) or 'no secret path'}); its norm is about "
                    f"{norm[i] * 24:.1f} a day."
                ),
            )
        )
    return findings
