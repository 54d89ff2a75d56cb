"""Rate spike: requests in an hour far above the identity's seasonal norm, which is the
busiest comparable hour in its rate history (the same weekday hour, and the same hour of
any day at half weight, each with the hours either side). Comparing with the busiest, not
the average, keeps daily batch peaks and Monday mornings quiet; an exfiltration loop at ten
times the usual pace still stands out. New identities have no norm and are not judged."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural
from detectors.finding import finding, hour_window
from detectors.settings import RateSpike


def detect(base: Baselines, batch: Batch, cfg: RateSpike) -> list[Finding]:
    findings = []
    weeks = base.ring_weeks
    for identity, hour, pos in batch.groups(batch.warm, "uhour"):
        if len(pos) < cfg.min_count:
            continue
        r = int(batch.rows[pos[0]])
        seasonal, pooled = base.rate_ref(r, int(hour))
        ref = max(seasonal, pooled / 2, 1)
        score = len(pos) / ref
        if score < cfg.threshold:
            continue
        span = hour_window(int(hour))
        findings.append(
            finding(
                "rate_spike",
                cfg,
                batch,
                identity=identity,
                span=span,
                evidence=pos,
                score=score,
                explanation=(
                    f"{identity} made {plural(len(pos), 'request')} in the hour from "
                    f"{batch.when(span[0])}, {score:.1f}x its norm; its busiest comparable hour "
                    f"in the last {weeks} weeks had {seasonal} (same weekday) and {pooled} "
                    "(any day)."
                ),
            )
        )
    return findings
