"""Denied burst: permission-denied answers far above what the identity usually gets in one
window. Probing with a stolen token (trying paths to see what it opens) looks like this; a
service that always gets a few denials (a misconfigured policy) has that in its norm."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.finding import finding, window
from detectors.settings import DeniedBurst


def detect(base: Baselines, batch: Batch, cfg: DeniedBurst) -> list[Finding]:
    denied = batch.ev.denied
    if not denied.any():
        return []
    secrets = batch.ev.secret
    findings = []
    minutes = batch.cfg.window_minutes
    # The short window catches a burst; the hour catches probing paced to stay under it,
    # held to twice the floor.
    for by, width_min, history_of, floor in (
        ("win", minutes, base.denied_max, cfg.min_denied),
        ("uhour", 60, base.denied_max_hour, 2 * cfg.min_denied),
    ):
        width = width_min * 60_000_000
        for identity, index, pos in batch.groups(denied, by):
            if len(pos) < floor:
                continue
            r = int(batch.rows[pos[0]])
            warm = bool(batch.warm[pos[0]])
            worst = int(history_of[r]) if r >= 0 else 0
            # Without history the norm is unknown: only the floor, at twice the height.
            ref = max(worst, floor / cfg.threshold) if warm else floor
            score = len(pos) / ref
            if score < cfg.threshold:
                continue
            paths = {s for s in secrets[pos] if s}
            history = (
                f"its worst {width_min} minutes before had {worst}"
                if warm
                else "it is too new to have a norm"
            )
            at = batch.first_us(pos)
            findings.append(
                finding(
                    "denied_burst",
                    cfg,
                    batch,
                    identity=identity,
                    span=window(index, width),
                    evidence=pos,
                    score=score,
                    explanation=(
                        f"{identity} was denied {plural(len(pos), 'time')} in {width_min} "
                        f"minutes from {batch.when(at)} on {plural(len(paths), 'path')} "
                        f"({sample(paths)}); {history}."
                    ),
                )
            )
    return findings
