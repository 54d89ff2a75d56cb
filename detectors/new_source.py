"""New source: an identity connects from a network it never used. An outside address that no
identity uses is the strongest case (a token replayed from an attacker's host); a new pod
subnet that other services already use is the weakest. Identities that pick up new networks
often (people on the move, services rescheduled across nodes) are discounted by how often
they did so in their history."""

from __future__ import annotations

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.events import HOUR_US, is_private
from detectors.settings import NewSource


def novelty(net: str, identity: str, base: Baselines) -> float:
    """How surprising a network nobody expected from this identity is, 0-1."""
    others = base.net_users.get(net, set()) - {identity}
    if not is_private(net):
        return 0.8 if others else 1.0
    return 0.2 if others else 0.5


def detect(base: Baselines, batch: Batch, cfg: NewSource) -> list[Finding]:
    f = batch.frame
    nets, ips = f["net"].to_numpy(), f["source_ip"].to_numpy()
    mask = batch.warm & (nets != "")
    findings = []
    for (identity, hour), pos in batch.groups(mask, "identity", "uhour"):
        r = int(batch.rows[pos[0]])
        known = base.nets[r]
        new = {n for n in set(nets[pos]) if n not in known}
        if not new:
            continue
        churn = min(1.0, 2 * base.net_new_days[r] / max(int(base.active_days[r]), 1))
        scored = {n: novelty(n, identity, base) * (1 - churn) for n in new}
        worst = max(scored, key=scored.__getitem__)
        if scored[worst] < cfg.threshold:
            continue
        hits = pos[nets[pos] == worst]
        outside = not is_private(worst)
        users = base.net_users.get(worst, set()) - {identity}
        at = batch.first_us(hits)
        findings.append(
            Finding(
                detector="new_source",
                identity=identity,
                start_us=int(hour) * HOUR_US,
                end_us=(int(hour) + 1) * HOUR_US,
                at_us=at,
                score=scored[worst],
                threshold=cfg.threshold,
                severity=cfg.severity,
                explanation=(
                    f"{identity} made {plural(len(hits), 'request')} from "
                    f"{sample(set(ips[hits]))} ({'an outside' if outside else 'an internal'} "
                    f"network, {worst}) at {batch.when(at)}; in "
                    f"{plural(int(base.active_days[r]), 'active day')} it used "
                    f"{plural(len(known), 'network')} ({sample(known, 2)}), and "
                    f"{'no other identity' if not users else sample(users, 2)} "
                    f"{'uses' if len(users) <= 1 else 'use'} this one."
                ),
                evidence=batch.ids(hits),
            )
        )
    return findings
