"""Enumeration: many distinct secrets read or listed in one short window, far beyond the
identity's own busiest window, or many it never touched at all. This is how someone maps a
backend with a token they just obtained. New identities are held to an absolute floor
twice as high, because a fresh service reading its whole configuration at start-up is
normal."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.finding import finding, window
from detectors.settings import Enumeration


def detect(base: Baselines, batch: Batch, cfg: Enumeration) -> list[Finding]:
    access = batch.ev.access
    if not access.any():
        return []
    secrets, actions = batch.ev.secret, batch.ev.action
    findings = []
    minutes = batch.cfg.window_minutes
    # The short window catches a sweep; the hour catches one paced to stay under it, held to
    # twice the floors.
    for by, width_min, history_of, scale in (
        ("win", minutes, base.distinct_max, 1),
        ("uhour", 60, base.distinct_max_hour, 2),
    ):
        width = width_min * 60_000_000
        min_distinct, min_novel = scale * cfg.min_distinct, scale * cfg.min_novel
        for identity, index, pos in batch.groups(access, by):
            if len(pos) < min(min_distinct, min_novel):
                continue
            touched = set(secrets[pos])
            if len(touched) < min(min_distinct, min_novel):
                continue
            r = int(batch.rows[pos[0]])
            if batch.warm[pos[0]]:
                worst = int(history_of[r])
                novel = touched - base.secrets[r]
                score = max(
                    len(touched) / max(worst, min_distinct / cfg.threshold),
                    cfg.threshold * len(novel) / min_novel,
                )
                history = f"the most it touched in any {width_min} minutes before was {worst}"
            else:
                # Young, not unknown: what it did read is not "never before".
                novel = touched - base.secrets[r] if r >= 0 else touched
                score = len(touched) / min_distinct
                history = "it is too new to have a norm"
            if score < cfg.threshold:
                continue
            lists = int((actions[pos] == "list").sum())
            at = batch.first_us(pos)
            findings.append(
                finding(
                    "enumeration",
                    cfg,
                    batch,
                    identity=identity,
                    span=window(index, width),
                    evidence=pos,
                    score=score,
                    explanation=(
                        f"{identity} touched {plural(len(touched), 'distinct secret')} "
                        f"({len(novel)} never before, {plural(lists, 'list')}) in {width_min} "
                        f"minutes from {batch.when(at)}, e.g. {sample(novel or touched)}; "
                        f"{history}."
                    ),
                )
            )
    return findings
