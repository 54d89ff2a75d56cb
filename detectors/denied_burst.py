"""Denied burst: permission-denied answers far above what the identity usually gets in one
window. Probing with a stolen token (trying paths to see what it opens) looks like this; a
service that always gets a few denials (a misconfigured policy) has that in its norm."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.settings import DeniedBurst


def detect(base: Baselines, batch: Batch, cfg: DeniedBurst) -> list[Finding]:
    denied = batch.ev.denied
    if not denied.any():
        return []
    width = batch.cfg.window_minutes * 60_000_000
    secrets = batch.ev.secret
    floor = cfg.min_denied / cfg.threshold
    findings = []
    for identity, win, pos in batch.groups(denied, "win"):
        if len(pos) < cfg.min_denied:
            continue
        r = int(batch.rows[pos[0]])
        warm = bool(batch.warm[pos[0]])
        worst = int(base.denied_max[r]) if r >= 0 else 0
        # Without history the norm is unknown: only the floor, at twice the height.
        ref = max(worst, floor) if warm else cfg.min_denied
        score = len(pos) / ref
        if score < cfg.threshold:
            continue
        paths = {s for s in secrets[pos] if s}
        history = (
            f"its worst {batch.cfg.window_minutes} minutes before had {worst}"
            if warm
            else "it is too new to have a norm"
        )
        at = batch.first_us(pos)
        findings.append(
            Finding(
                detector="denied_burst",
                identity=identity,
                start_us=int(win) * width,
                end_us=(int(win) + 1) * width,
                at_us=at,
                score=score,
                threshold=cfg.threshold,
                severity=cfg.severity,
                explanation=(
                    f"{identity} was denied {plural(len(pos), 'time')} in "
                    f"{batch.cfg.window_minutes} minutes from {batch.when(at)} on "
                    f"{plural(len(paths), 'path')} ({sample(paths)}); {history}."
                ),
                evidence=batch.ids(pos),
            )
        )
    return findings
