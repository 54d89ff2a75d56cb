"""Unusual time: activity at an hour of the week the identity (almost) never uses, such as a
CI identity or a person at 03:00 on a Sunday. Identities still in cold start are not judged:
two weeks of history are not enough to call an hour strange.

A service doing exactly its usual work (only secrets it reads, from networks it uses, at its
usual volume) at a new hour has most likely been rescheduled; its score is discounted by
`routine_factor`, so a moved cron job does not page anyone, while a token replayed at night
from elsewhere, or used to read anything else, still does."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural
from detectors.finding import finding, hour_window
from detectors.settings import UnusualTime


def detect(base: Baselines, batch: Batch, cfg: UnusualTime) -> list[Finding]:
    ev = batch.ev
    secrets, nets, how, access = ev.secret, ev.net, ev.how, ev.access
    findings = []
    for identity, hour, pos in batch.groups(batch.warm, "uhour"):
        r = int(batch.rows[pos[0]])
        usage, words = base.usage(r, int(how[pos[0]]), batch.start_us)
        if usage >= cfg.max_usage:
            continue
        score = 1 - usage / cfg.max_usage
        touched = {s for s in secrets[pos[access[pos]]]}
        routine = (
            base.kind[r] != "human"
            and touched <= base.secrets[r]
            and {n for n in nets[pos] if n} <= base.nets[r]
            and len(pos) <= 2 * max(int(base.ring[r].max()), 1)
        )
        if routine:
            score *= cfg.routine_factor
        irregular = base.irregularity(r)
        half = cfg.irregular_share / 2  # full weight up to half the share, none at the share
        score *= min(1.0, max(0.0, (cfg.irregular_share - irregular) / half))
        if score < cfg.threshold:
            continue
        at = batch.first_us(pos)
        did = (
            f"read {plural(len(touched), 'secret')}"
            if touched
            else f"made {plural(len(pos), 'request')}"
        )
        findings.append(
            finding(
                "unusual_time",
                cfg,
                batch,
                identity=identity,
                span=hour_window(int(hour)),
                evidence=pos,
                score=score,
                explanation=(
                    f"{identity} {did} at {batch.when(at)}; {words}"
                    + (
                        f" (it was up at such hours on {irregular:.0%} of its days)"
                        if irregular
                        else ""
                    )
                    + "."
                ),
            )
        )
    return findings
