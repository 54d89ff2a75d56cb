"""Rate spike: requests in an hour far above the identity's seasonal norm, which is the
busiest comparable hour in its rate history (the same weekday hour, and the same hour of
any day at half weight, each with the hours either side). Comparing with the busiest, not
the average, keeps daily batch peaks and Monday mornings quiet; an exfiltration loop at ten
times the usual pace still stands out. New identities have no norm and are not judged."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural
from detectors.events import HOUR_US
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
        start = int(hour) * HOUR_US
        findings.append(
            Finding(
                detector="rate_spike",
                identity=identity,
                start_us=start,
                end_us=start + HOUR_US,
                at_us=batch.first_us(pos),
                score=score,
                threshold=cfg.threshold,
                severity=cfg.severity,
                explanation=(
                    f"{identity} made {plural(len(pos), 'request')} in the hour from "
                    f"{batch.when(start)}, {score:.1f}x its norm; its busiest comparable hour "
                    f"in the last {weeks} weeks had {seasonal} (same weekday) and {pooled} "
                    "(any day)."
                ),
                evidence=batch.ids(pos),
            )
        )
    return findings
