"""Incidents that span identities, made from the findings of one batch before they are
grouped per identity (the engine calls both passes from `Detection`).

- Shared source: an outside network that several identities, none of which had used it,
  come from within `window_hours` of the first of them is one attack with several stolen
  credentials, not one alert per identity. The new-source findings on it become one
  `shared_source` finding about the first identity (its incident holds the rest: the id
  of an incident is its first finding's, so judging again gives the same one) naming all
  of them; the first identity's own new-source finding stays, so its incident opens as it
  would have alone.
- Fleet: many identities deviating in one batch (a rotation, a deploy, a restart) is one
  `fleet` finding about the pseudo-identity `fleet`, the individual findings its evidence.
  When the secrets they re-read were written or rotated shortly before, it says so and
  is kept at `explained_severity`, below what pages anyone. Only a complete batch can
  tell, so a stream raises those findings when their batch is complete (`held`), not as
  their events arrive: live detection raises what replay does.

Both passes see the identities one detection state judges: a live member sees those it
owns, so with several members an incident spans only identities of one partition. The
writes that explain a fleet are held in memory: a restart forgets those before it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, sample
from detectors.events import HOUR_US, Events, is_private
from detectors.settings import Fleet, SharedSource

FLEET = "fleet"  # the identity of a fleet-wide finding
WRITES = ("write", "rotate")


# -- shared source ----------------------------------------------------------------------------
def tag_networks(base: Baselines, batch: Batch, findings: list[Finding]) -> list[Finding]:
    """The batch's new-source findings with the outside network they saw, when the
    identity never used it (a finding on a new client alone stays untagged)."""
    ev = batch.ev
    tagged = []
    for f in findings:
        if f.detector == "new_source" and not f.network:
            pos = np.flatnonzero(np.isin(ev.event_id, f.evidence))
            nets = set(ev.net[pos]) if len(pos) else set()
            if len(nets) == 1:
                net = str(nets.pop())
                if not is_private(net) and net not in base.nets[int(batch.rows[pos[0]])]:
                    f = replace(f, network=net)
        tagged.append(f)
    return tagged


def shared_sources(
    findings: list[Finding],
    earlier: Iterable[Finding],
    cfg: SharedSource,
    when: Callable[[int], str],
) -> list[Finding]:
    """`findings` (tagged) with the new-source findings of identities sharing an outside
    network replaced by one `shared_source` finding each; `earlier` are the tagged findings
    of open incidents (sightings of previous batches). `when` words an instant
    (`Batch.when`)."""
    window = int(cfg.window_hours * HOUR_US)
    now = [f for f in findings if f.network and f.detector == "new_source"]
    if not now:
        return findings
    nets = {f.network for f in now}
    fresh = {f.key for f in now}
    sightings = {f.key: f for f in earlier if f.network in nets}
    sightings.update((f.key, f) for f in now)
    absorbed: set[tuple[str, str, int]] = set()
    made: list[Finding] = []
    for net in sorted(nets):
        on = sorted(
            (f for f in sightings.values() if f.network == net),
            key=lambda f: (f.at_us, f.identity, f.detector),
        )
        while on:
            first = on[0]
            chain = [f for f in on if f.at_us - first.at_us <= window]
            on = on[len(chain) :]
            who = _named(chain)
            current = [f for f in chain if f.key in fresh]
            if len(who) < cfg.min_identities or not current:
                continue
            made.append(_shared(when, net, first, chain, who, cfg))
            absorbed.update(f.key for f in current if f.identity != first.identity)
    kept = [f for f in findings if f.key not in absorbed]
    return kept + made


def _named(chain: list[Finding]) -> list[str]:
    """The identities of a chain of sightings, in order of first appearance."""
    seen: dict[str, None] = {}
    for f in chain:
        for i in (f.identity, *f.identities):
            seen.setdefault(i, None)
    return list(seen)


def _shared(
    when: Callable[[int], str],
    net: str,
    first: Finding,
    chain: list[Finding],
    who: list[str],
    cfg: SharedSource,
) -> Finding:
    evidence: dict[str, None] = {}
    for f in chain:
        evidence.update(dict.fromkeys(f.evidence))
    last = max(f.at_us for f in chain)
    span = (last - first.at_us) / HOUR_US
    return Finding(
        detector="shared_source",
        identity=first.identity,
        start_us=first.start_us,
        end_us=max(f.end_us for f in chain),
        at_us=first.at_us,
        score=float(len(who)),
        threshold=float(cfg.min_identities),
        severity=cfg.severity,
        explanation=(
            f"{len(who)} identities came from one outside network, {net}, that none of them"
            f" had used, within {span:.1f} hours: {', '.join(who)}; first {first.identity}"
            f" at {when(first.at_us)}. One source with several credentials."
        ),
        evidence=tuple(evidence),
        identities=tuple(who),
        network=net,
    )


# -- fleet ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Written:
    """The latest write or rotation of a secret: when and by whom."""

    at_us: int
    by: str


def remember_writes(
    writes: dict[str, Written], ev: Events, end_us: int, cfg: Fleet
) -> dict[str, Written]:
    """`writes` with the batch's successful writes and rotations added and those older than
    `rotation_hours` before `end_us` dropped."""
    held = dict(writes)
    held.update(_writes(ev))
    horizon = end_us - int(cfg.rotation_hours * HOUR_US)
    return {s: w for s, w in held.items() if w.at_us >= horizon}


def _writes(ev: Events) -> dict[str, Written]:
    mask = np.isin(ev.action, WRITES) & (ev.outcome == "success") & (ev.secret != "")
    found: dict[str, Written] = {}
    for pos in np.flatnonzero(mask):  # writes are few: a rotation touches tens of secrets
        found[str(ev.secret[pos])] = Written(int(ev.ts_us[pos]), str(ev.identity[pos]))
    return found


def deviating(findings: list[Finding], cfg: Fleet) -> set[str]:
    """The identities of the findings that may become a fleet finding's evidence."""
    return {f.identity for f in findings if f.detector in cfg.detectors}


def held(findings: list[Finding], cfg: Fleet, also: set[str] | None = None) -> list[Finding]:
    """`findings` of a batch seen in part, without those that may become a fleet finding's
    evidence once a fleet may be forming (half of `min_identities` deviate already, with
    `also`: those seen deviating in an earlier part): a part cannot tell the first of many
    services from one. One or two identities deviating alone are what an attack looks
    like, and are raised at once rather than an hour later."""
    members = deviating(findings, cfg) | (also or set())
    if len(members) < max(2, -(-cfg.min_identities // 2)):
        return findings
    return [f for f in findings if f.detector not in cfg.detectors]


def fleet_wide(
    batch: Batch, findings: list[Finding], writes: dict[str, Written], cfg: Fleet
) -> list[Finding]:
    """`findings` with those of `cfg.detectors` replaced by one `fleet` finding when at
    least `min_identities` identities, and `min_share` of the batch's active ones, have
    them; unchanged otherwise."""
    ev = batch.ev
    members = [f for f in findings if f.detector in cfg.detectors and f.identity != FLEET]
    who = sorted({f.identity for f in members})
    if len(who) < cfg.min_identities:
        return findings
    active = len(np.unique(ev.icode[ev.access]))
    if len(who) < cfg.min_share * max(active, 1):
        return findings
    evidence: dict[str, None] = {}
    for f in sorted(members, key=lambda f: (f.at_us, f.identity, f.detector)):
        evidence.update(dict.fromkeys(f.evidence))
    rotation = _rotation(batch, tuple(evidence), who, {**writes, **_writes(ev)}, cfg)
    kinds = Counter(f.detector for f in members)
    seen = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    share = f"{len(who)} of {active} active identities"
    if rotation:
        severity = cfg.explained_severity
        explanation = (
            f"{len(who)} services re-read secrets {rotation}: {sample(who, 5)} deviated"
            f" together ({seen}; {share}). Expected after a rotation."
        )
    else:
        severity = cfg.severity
        explanation = (
            f"{len(who)} identities deviated together ({seen}; {share}): {sample(who, 5)}."
            " One fleet-wide change (a deploy, a restart), not one incident per service."
        )
    taken = {f.key for f in members}
    return [f for f in findings if f.key not in taken] + [
        Finding(
            detector=FLEET,
            identity=FLEET,
            start_us=min(f.start_us for f in members),
            end_us=max(f.end_us for f in members),
            at_us=min(f.at_us for f in members),
            score=float(len(who)),
            threshold=float(cfg.min_identities),
            severity=severity,
            explanation=explanation,
            evidence=tuple(evidence),
            identities=tuple(who),
        )
    ]


def _rotation(
    batch: Batch,
    evidence: tuple[str, ...],
    who: list[str],
    writes: dict[str, Written],
    cfg: Fleet,
) -> str:
    """`rotated at 03:00 on ... by X` when at least half of `who` read, in the evidence, a
    secret written or rotated within `rotation_hours` before the read; "" otherwise."""
    if not writes:
        return ""
    ev = batch.ev
    pos = np.flatnonzero(np.isin(ev.event_id, evidence) & (ev.action == "read"))
    hours = int(cfg.rotation_hours * HOUR_US)
    matched: dict[str, Written] = {}
    readers: set[str] = set()
    for secret, identity, ts in zip(ev.secret[pos], ev.identity[pos], ev.ts_us[pos], strict=True):
        w = writes.get(str(secret))
        if w is not None and 0 <= int(ts) - w.at_us <= hours:
            matched[str(secret)] = w
            readers.add(str(identity))
    if 2 * len(readers) < len(who):
        return ""
    by = Counter(w.by for w in matched.values()).most_common()
    top = min(b for b, n in by if n == by[0][1])
    return f"rotated at {batch.when(min(w.at_us for w in matched.values()))} by {top}"
