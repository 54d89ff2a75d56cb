"""Enumeration: many distinct secrets read or listed in one short window, far beyond the
identity's own busiest window, or many it never touched at all. This is how someone maps a
backend with a token they just obtained. New identities are held to an absolute floor
twice as high, because a fresh service reading its whole configuration at start-up is
normal."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.settings import Enumeration


def detect(base: Baselines, batch: Batch, cfg: Enumeration) -> list[Finding]:
    access = batch.ev.access
    if not access.any():
        return []
    width = batch.cfg.window_minutes * 60_000_000
    secrets, actions = batch.ev.secret, batch.ev.action
    floor = cfg.min_distinct / cfg.threshold
    findings = []
    for identity, win, pos in batch.groups(access, "win"):
        if len(pos) < min(cfg.min_distinct, cfg.min_novel):
            continue
        touched = set(secrets[pos])
        r = int(batch.rows[pos[0]])
        warm = bool(batch.warm[pos[0]])
        if warm:
            worst = int(base.distinct_max[r])
            novel = touched - base.secrets[r]
            score = max(
                len(touched) / max(worst, floor), cfg.threshold * len(novel) / cfg.min_novel
            )
            history = (
                f"the most it touched in any {batch.cfg.window_minutes} minutes before was {worst}"
            )
        else:
            novel = touched
            score = len(touched) / cfg.min_distinct
            history = "it is too new to have a norm"
        if score < cfg.threshold or len(touched) < min(cfg.min_distinct, cfg.min_novel):
            continue
        lists = int((actions[pos] == "list").sum())
        at = batch.first_us(pos)
        findings.append(
            Finding(
                detector="enumeration",
                identity=identity,
                start_us=int(win) * width,
                end_us=(int(win) + 1) * width,
                at_us=at,
                score=score,
                threshold=cfg.threshold,
                severity=cfg.severity,
                explanation=(
                    f"{identity} touched {plural(len(touched), 'distinct secret')} "
                    f"({len(novel)} never before, {plural(lists, 'list')}) in "
                    f"{batch.cfg.window_minutes} minutes from {batch.when(at)}, e.g. "
                    f"{sample(novel or touched)}; {history}."
                ),
                evidence=batch.ids(pos),
            )
        )
    return findings
