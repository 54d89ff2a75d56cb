"""Unexpected accessor: an identity reads a secret it never touched, in a folder it never
touched, that other identities own. This is how a compromised service reaching for another
team's database password looks, and how low-and-slow collection looks one read at a time.

Shared configuration (a secret read by a good share of all identities) is not anyone's in
particular, and a brand-new secret nobody has read yet has no owner to offend. People roam
more than services: an identity that often picked up new folders before scores lower. A
secret its peers (detectors.peers) read routinely scores lower still, and a new member of a
group is judged by the same rule, so it starts from what its group reads."""

from __future__ import annotations

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.finding import finding, hour_window
from detectors.peers import Peers, peers
from detectors.settings import UnexpectedAccessor


def detect(base: Baselines, batch: Batch, cfg: UnexpectedAccessor) -> list[Finding]:
    ev = batch.ev
    ok = ev.access & ~ev.denied
    if not ok.any():
        return []
    common = max(cfg.common_min, cfg.common_fraction * max(len(base), 1))
    secrets, areas = ev.secret, ev.area
    findings = []
    for identity, hour, pos in batch.groups(ok, "uhour"):
        r = int(batch.rows[pos[0]])
        warm = bool(batch.warm[pos[0]])
        mine = base.secrets[r] if r >= 0 else set()
        my_areas = base.areas[r] if r >= 0 else {}
        roam = 0.0
        if r >= 0 and base.active_days[r]:
            roam = min(1.0, 3 * base.area_new_days[r] / base.active_days[r])
        flagged: dict[str, tuple[float, set[str]]] = {}
        group: Peers | None = None
        peer_read: dict[str, list[str]] = {}
        _, first = np.unique(ev.scode[pos], return_index=True)  # a secret's area is its own
        for s, a in zip(secrets[pos[first]].tolist(), areas[pos[first]].tolist(), strict=True):
            if s in mine or a in my_areas:
                continue
            owners = base.accessors.get(s, set()) - {identity}
            if not owners and warm:
                # A secret nobody read yet, in a folder others use. (A new identity reading
                # new secrets is a deployment, not an intrusion.)
                owners = base.area_users.get(a, set()) - {identity}
            if not owners or len(owners) >= common:
                continue
            if len({base.home(o) for o in owners}) >= cfg.shared_homes:
                continue  # read from many teams' home folders: shared, not owned
            score = (1 - 0.5 * len(owners) / common) * (1 - 0.6 * roam)
            if all(base.kind[base.index[o]] == "human" for o in owners):
                score *= cfg.people_only_factor
            group = group or peers(base, identity, batch.cfg.policies)
            readers = group.readers(base, s, cfg.routine_reads)
            if readers:
                score *= cfg.peer_factor
            if score >= cfg.threshold:
                flagged[s] = (score, owners)
                peer_read[s] = readers
        if not flagged:
            continue
        hits = pos[np.isin(secrets[pos], list(flagged))]
        owners_all = set().union(*(o for _, o in flagged.values()))
        at = batch.first_us(hits)
        history = (
            f"{plural(int(base.active_days[r]), 'active day')} of history"
            if r >= 0
            else "its first days (no history yet)"
        )
        findings.append(
            finding(
                "unexpected_accessor",
                cfg,
                batch,
                identity=identity,
                span=hour_window(int(hour)),
                evidence=hits,
                score=max(s for s, _ in flagged.values()),
                explanation=(
                    f"{identity} read {sample(set(flagged))} ({plural(len(hits), 'request')}) "
                    f"at {batch.when(at)}, in {'a folder' if len(flagged) == 1 else 'folders'}"
                    f" it never touched in {history}; "
                    f"{'it is' if len(flagged) == 1 else 'they are'} read by "
                    f"{sample(owners_all)}.{_peer_note(identity, group, peer_read)}"
                ),
            )
        )
    return findings


def _peer_note(identity: str, group: Peers | None, peer_read: dict[str, list[str]]) -> str:
    """Its peers that read it routinely, if any: why the score is lower."""
    readers = sorted({r for names in peer_read.values() for r in names})
    if group is None or not readers:
        return ""
    return (
        f" First read by {identity}, routinely read by peers {sample(readers)} "
        f"({group.reasons(readers)}): less surprising."
    )
