"""Training and streaming detection: pure computation over prepared events.

`train` learns the baselines (and fits the multivariate model) from a training window.
`Detection.run` takes one time-ordered batch: every enabled detector judges it against the
baselines as they stood before it, findings join the open incident of their identity (or
open a new one), and only then are the baselines updated, without the events that raised
findings. The replay command, `secretwatch detect` and the Kafka stage all drive this one
loop, so they cannot disagree. Before grouping, findings that span identities are made
(detectors/fleet.py): identities sharing an outside network join the first one's incident,
and many identities deviating at once become one `fleet` finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from detectors import (
    cold_enumeration,
    control_plane,
    denied_burst,
    dormant,
    enumeration,
    fleet,
    multivariate,
    new_source,
    rate_spike,
    root_token,
    sustained_denied,
    sustained_rate,
    unexpected_accessor,
    unusual_time,
)
from detectors.alert import Finding, Incident
from detectors.baseline import Baselines, learn
from detectors.batch import Batch, when
from detectors.events import HOUR_US, Events
from detectors.settings import DetectorsConfig

Detector = Callable[[Baselines, Batch, Any], list[Finding]]

# name -> detect(baselines, batch, settings); the name is also its key under `detectors:`.
DETECTORS: dict[str, Detector] = {
    "unusual_time": unusual_time.detect,
    "rate_spike": rate_spike.detect,
    "unexpected_accessor": unexpected_accessor.detect,
    "denied_burst": denied_burst.detect,
    "enumeration": enumeration.detect,
    "cold_enumeration": cold_enumeration.detect,
    "new_source": new_source.detect,
    "dormant": dormant.detect,
    "root_token": root_token.detect,
    "control_plane": control_plane.detect,
    "sustained_rate": sustained_rate.detect,
    "sustained_denied": sustained_denied.detect,
    "multivariate": multivariate.detect,
}


# Detectors whose finding on part of an hour's events the whole hour confirms, under the
# same key: each judges every event by the hour it falls in against the baselines alone
# (no count or share of the hour's events decides), so more events only add evidence or
# raise the score. A stream may judge just its newest events with them (`peek_new`).
EVENT_LEVEL = frozenset(
    {"root_token", "control_plane", "new_source", "unexpected_accessor", "unusual_time"}
)


def train(ev: Events, cfg: DetectorsConfig, until_us: int | None = None) -> Baselines:
    """Baselines from prepared training events (up to `until_us`), with the multivariate
    model fitted on their last third against baselines learned from the first two thirds."""
    base = learn(ev, cfg.timezone, cfg.window_minutes, cfg.rate_history_weeks, until_us)
    mv = cfg.multivariate
    if mv.enabled and len(ev):
        ts = ev.ts_us
        cut = int(ts[0] + (ts[-1] - ts[0]) * 2 // 3) // HOUR_US * HOUR_US
        split = int(np.searchsorted(ts, cut))
        early = learn(
            ev.slice(0, split), cfg.timezone, cfg.window_minutes, cfg.rate_history_weeks, cut
        )
        holdout = ev.slice(split, len(ev))
        rows = early.ids(holdout.identity)
        warm = early.warm(rows, cut, cfg.cold_start.min_active_days, cfg.cold_start.min_span_days)
        base.model = multivariate.fit(early, holdout, mv, warm, cut)
    return base


@dataclass
class Detection:
    """Streaming detection state: baselines plus the incidents still open.

    `known` holds, per identity, incidents raised before this state was loaded (the stored
    alerts of a previous owner, or of this one before a reload) that judging the same
    events again may reach. A finding that would open a new incident within the grouping
    gap of one of them re-opens it instead, so it keeps its id and its findings: which
    finding opened an incident depends on what had arrived when it was first judged, and
    a judgement made again, in one go, must not open the same incident under another id."""

    base: Baselines
    cfg: DetectorsConfig
    open: dict[str, Incident] = field(default_factory=dict)
    closed: list[Incident] = field(default_factory=list)
    known: dict[str, list[Incident]] = field(default_factory=dict)
    # Ids of incidents whose alerts are stored (the caller keeps this), and of incidents
    # merged into a known one before their alert was stored (never to be stored).
    raised: set[str] = field(default_factory=set)
    merged: set[str] = field(default_factory=set)
    # Secrets written or rotated within `fleet.rotation_hours` (what explains a fleet
    # re-reading them); kept in memory only: a restart forgets the writes before it.
    writes: dict[str, fleet.Written] = field(default_factory=dict)
    # Identities seen deviating in the open batch so far (by `peek` or `peek_new`): its
    # later parts count them when they hold back a forming fleet's findings.
    holding: set[str] = field(default_factory=set)

    def run(self, ev: Events, start_us: int, end_us: int) -> list[Incident]:
        """Judge one batch covering [start_us, end_us); return the incidents it opened or
        added to (new evidence for the sinks)."""
        findings = self._judge(ev, start_us, end_us)
        changed = self._group(findings)
        exclude = None
        if findings:
            evidence = {e for f in findings for e in f.evidence}
            exclude = np.isin(ev.event_id, list(evidence))
        self.base.update(ev, (start_us, end_us), exclude)
        if self.cfg.fleet.enabled:
            self.writes = fleet.remember_writes(self.writes, ev, end_us, self.cfg.fleet)
        # Findings of later batches start at most an hour before them (a finding's window is
        # its hour, or shorter), so an incident that ends a gap before that is complete.
        horizon = end_us - HOUR_US - int(self.cfg.group_gap_hours * HOUR_US)
        for identity, incident in list(self.open.items()):
            if incident.end_us < horizon:
                self.closed.append(self.open.pop(identity))
        if self.known:
            for identity, incidents in list(self.known.items()):
                incidents[:] = [i for i in incidents if i.end_us >= horizon]
                if not incidents:
                    del self.known[identity]
        return changed

    def peek(self, ev: Events, start_us: int, end_us: int) -> list[Incident]:
        """Judge the part of a batch seen so far without learning from it: a stream raises
        alerts as events arrive and `run`s the batch once it is complete (the same
        findings then only grow). Only the first batch not yet learned from is judged
        this way: a later one would be judged against baselines that have not learned
        the batches before it, and its findings would come ahead of theirs."""
        return self._group(self._judge(ev, start_us, end_us, peeking=True))

    def peek_new(
        self,
        new: Events,
        of: Callable[[list[str], int], Events],
        start_us: int,
        end_us: int,
        most: int,
    ) -> list[Incident]:
        """Judge only the newest events of a batch, with the `EVENT_LEVEL` detectors: what
        a stream does between two `peek`s when the whole batch is too large to judge on
        every poll. A finding under a key its identity's incident already holds is judged
        again over all of that identity's events in the batch, so that its evidence and
        explanation cover them, unless they are more than `most` (`of(identities, most)`
        gives the events of those that are not; a busy identity waits for the next
        `peek`)."""
        batch, found = self._detect(new, start_us, end_us, EVENT_LEVEL)
        if batch is None:
            return []
        again = sorted({f.identity for f in found if self._holds(f)})
        parts = [(batch, found)]
        if again:
            whole = of(again, most)
            small = set(whole.identity.tolist())
            # judged again below, or busy: then only findings under new keys are kept
            keep = [f for f in found if f.identity not in small and not self._holds(f)]
            parts = [(batch, keep)]
            part, refound = self._detect(whole, start_us, end_us, EVENT_LEVEL)
            if part is not None:
                parts.append((part, refound))
        findings = [f for part, fs in parts for f in self._networks(part, fs)]
        return self._group(self._hold(findings))

    def judge_part(self, ev: Events, start_us: int, end_us: int) -> list[Finding]:
        """What every detector finds in `ev`, the part of the open batch seen so far, with
        new sources tagged by network, before they are made into findings across identities
        and grouped (`apply_peek`): the part of `peek` that reads only the baselines, which
        another process may run while nothing learns from a batch (`background.py`)."""
        batch, findings = self._detect(ev, start_us, end_us)
        return [] if batch is None else fleet.tag_networks(self.base, batch, findings)

    def apply_peek(self, findings: list[Finding]) -> list[Incident]:
        """Group what `judge_part` found, as `peek` does."""
        findings = self._shared(findings, partial(when, tz=self.cfg.timezone))
        return self._group(self._hold(findings))

    def _holds(self, f: Finding) -> bool:
        incident = self.open.get(f.identity)
        return incident is not None and f.key in incident.keys

    def _judge(
        self, ev: Events, start_us: int, end_us: int, peeking: bool = False
    ) -> list[Finding]:
        batch, findings = self._detect(ev, start_us, end_us)
        return [] if batch is None else self._across(batch, findings, peeking)

    def _detect(
        self, ev: Events, start_us: int, end_us: int, only: frozenset[str] | None = None
    ) -> tuple[Batch | None, list[Finding]]:
        """The findings of every enabled detector (of `only`, if given) on `ev`."""
        if not len(ev):
            return None, []
        batch = Batch.of(self.base, ev, start_us, end_us, self.cfg)
        findings: list[Finding] = []
        for name, detect in DETECTORS.items():
            settings = getattr(self.cfg, name)
            if settings.enabled and (only is None or name in only):
                findings.extend(detect(self.base, batch, settings))
        return batch, findings

    def _across(self, batch: Batch, findings: list[Finding], peeking: bool) -> list[Finding]:
        """Findings that span identities (detectors/fleet.py): identities sharing an outside
        network (with the sightings of open incidents), then a fleet deviating at once.
        Whether a fleet deviates is known once its batch is complete: a peek holds back the
        findings that may become its evidence, so a stream raises what a replay does."""
        findings = self._networks(batch, findings)
        if self.cfg.fleet.enabled:
            if peeking:
                return self._hold(findings)
            self.holding = set()
            findings = fleet.fleet_wide(batch, findings, self.writes, self.cfg.fleet)
        return findings

    def _hold(self, findings: list[Finding]) -> list[Finding]:
        """A part's findings without those a forming fleet may claim, counting the
        identities earlier parts of the batch saw deviating (`holding`, kept up here); all
        of them when fleets are not looked for."""
        if not self.cfg.fleet.enabled:
            return findings
        also = set(self.holding)
        self.holding |= fleet.deviating(findings, self.cfg.fleet)
        return fleet.held(findings, self.cfg.fleet, also)

    def _networks(self, batch: Batch, findings: list[Finding]) -> list[Finding]:
        """New-source findings tagged with their outside network, and those of identities
        sharing one (with the sightings of open incidents) made one `shared_source`."""
        return self._shared(fleet.tag_networks(self.base, batch, findings), batch.when)

    def _shared(self, findings: list[Finding], when: Callable[[int], str]) -> list[Finding]:
        shared = self.cfg.shared_source
        if shared.enabled:
            earlier = (f for i in self.open.values() for f in i.findings if f.network)
            findings = fleet.shared_sources(findings, earlier, shared, when)
        return findings

    def _group(self, findings: list[Finding]) -> list[Incident]:
        changed: dict[int, Incident] = {}
        gap = int(self.cfg.group_gap_hours * HOUR_US)
        for f in sorted(findings, key=lambda f: (f.start_us, f.detector, f.identity)):
            incident = self.open.get(f.identity)
            if incident is None or f.start_us - incident.end_us > gap:
                if incident is not None:
                    self.closed.append(incident)
                incident = self._known(f, gap) or Incident(
                    f.identity, baseline_version=self.base.version
                )
                self.open[f.identity] = incident
            elif self.known and incident.id not in self.raised:
                incident = self._join_known(incident, f, gap, changed)
            elif self.known:
                incident = self._reach_known(incident, f, gap)
            if incident.add(f):
                changed[id(incident)] = incident
        return list(changed.values())

    def _join_known(
        self, incident: Incident, f: Finding, gap: int, changed: dict[int, Incident]
    ) -> Incident:
        """Judged again, an incident opened earlier than a known one (the first judgement
        had fewer events, or knew less of the other identities) may grow into it: they are
        one incident, under the id already raised. Only while the younger one's alert is
        not stored: one raised cannot be taken back."""
        raised = self._known(f, gap)
        if raised is None:
            return incident
        for g in incident.findings:
            raised.add(g)
        changed.pop(id(incident), None)
        self.merged.add(incident.id)
        self.open[f.identity] = raised
        changed[id(raised)] = raised
        return raised

    def _reach_known(self, incident: Incident, f: Finding, gap: int) -> Incident:
        """Judged again, a raised incident may reach a younger raised one (the first
        judgement missed the findings between them). Neither can be taken back, so the
        older one ends where the younger begins: a finding from its start on is the
        younger's, as the first judgement had it, never the older's grown over it."""
        found = self._take_known(
            f.identity, lambda i: incident.start_us < i.start_us <= f.start_us <= i.end_us + gap
        )
        if found is None:
            return incident
        self.closed.append(incident)
        self.open[f.identity] = found
        return found

    def _known(self, f: Finding, gap: int) -> Incident | None:
        """The known incident `f` belongs to (within the gap of it), taken out of `known`."""
        return self._take_known(
            f.identity, lambda i: i.start_us - gap <= f.end_us and f.start_us <= i.end_us + gap
        )

    def _take_known(self, identity: str, near: Callable[[Incident], bool]) -> Incident | None:
        """The earliest known incident of `identity` that is `near`, taken out of `known`."""
        mine = self.known.get(identity)
        found = min(
            (i for i in mine or () if near(i)), key=lambda i: (i.start_us, i.id), default=None
        )
        if mine and found is not None:
            mine.remove(found)
            if not mine:
                del self.known[identity]
        return found

    def incidents(self) -> list[Incident]:
        """Every incident so far, closed and open, in time order."""
        return sorted([*self.closed, *self.open.values()], key=lambda i: (i.start_us, i.id))
