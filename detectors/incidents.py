"""Incident documents: an open incident as detection state keeps it, and an incident
rebuilt from its stored alert. One encoder and one decoder each.

A kept incident holds every finding whole (with its evidence), so a restart continues it
exactly. An alert keeps no evidence per finding, so an incident rebuilt from one carries
the alert's evidence (and the identities of an incident that spans several) on its opening
finding; judging the batches again restores the rest.

>>> incident = Incident("root", baseline_version=3)
>>> _ = incident.add(Finding("root_token", "root", 0, 10, 5, 1.0, 1.0, "critical", "x.", ("e",)))
>>> IncidentDoc.of(incident).incident() == incident
True
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from detectors.alert import Alert, Finding, Incident, alert_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FindingState(BaseModel):
    """One finding whole, as detection state keeps it (the fields of `Finding`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str
    identity: str
    start_us: int
    end_us: int
    at_us: int
    score: float
    threshold: float
    severity: str
    explanation: str
    evidence: tuple[str, ...]
    # Added later: written only when set, so the documents of findings about one identity
    # keep their bytes, and those written before load.
    identities: tuple[str, ...] = ()
    network: str = ""

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc: dict[str, Any] = handler(self)
        if not doc.get("identities"):
            doc.pop("identities", None)
        if not doc.get("network"):
            doc.pop("network", None)
        return doc

    @classmethod
    def of(cls, f: Finding) -> FindingState:
        return cls(
            detector=f.detector,
            identity=f.identity,
            start_us=int(f.start_us),
            end_us=int(f.end_us),
            at_us=int(f.at_us),
            score=float(f.score),
            threshold=float(f.threshold),
            severity=f.severity,
            explanation=f.explanation,
            evidence=tuple(f.evidence),
            identities=tuple(f.identities),
            network=f.network,
        )

    def finding(self) -> Finding:
        return Finding(
            self.detector,
            self.identity,
            self.start_us,
            self.end_us,
            self.at_us,
            self.score,
            self.threshold,
            self.severity,
            self.explanation,
            self.evidence,
            self.identities,
            self.network,
        )


class IncidentDoc(BaseModel):
    """An open incident as detection state keeps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str
    baseline_version: int
    findings: tuple[FindingState, ...]

    @classmethod
    def of(cls, incident: Incident) -> IncidentDoc:
        return cls(
            identity=incident.identity,
            baseline_version=int(incident.baseline_version),
            findings=tuple(FindingState.of(f) for f in incident.findings),
        )

    def incident(self) -> Incident:
        incident = Incident(self.identity, baseline_version=self.baseline_version)
        for f in self.findings:
            incident.add(f.finding())
        return incident


def from_alert(alert: Alert) -> Incident:
    """An incident rebuilt from its stored alert: the opening finding first (it gives the
    id), carrying the alert's evidence (the alert keeps no evidence per finding); judging
    the batches again restores the rest. A finding's first evidence is not kept either:
    none is earlier than the alert's timestamp (the earliest of them)."""
    incident = Incident(alert.identity, baseline_version=alert.baseline_version)
    first = exact_us(alert.timestamp)
    findings = []
    for doc in alert.findings:
        start = exact_us(doc.window_start)
        findings.append(
            Finding(
                doc.detector,
                alert.identity,
                start,
                exact_us(doc.window_end),
                max(start, first),
                doc.score,
                doc.threshold,
                doc.severity,
                doc.explanation,
                (),
            )
        )
    opener = next((f for f in findings if _id(f) == alert.id), findings[0] if findings else None)
    if opener is None:
        return incident
    # A stored incident that spans identities keeps them on its opener, as its evidence.
    named = tuple(alert.identities)
    incident.add(replace(opener, evidence=tuple(alert.evidence), identities=named))
    for f in findings:
        if f is not opener:
            incident.add(f)
    return incident


def merge(current: Incident, stored: Incident) -> None:
    """Add to a kept incident what its stored alert, written later, adds: findings (without
    evidence of their own: judging again restores it) and the evidence not covered by the
    kept findings, carried by the opener as in `from_alert`."""
    have = {e for f in current.findings for e in f.evidence}
    for f in stored.findings:
        if f.key not in current.keys:
            current.add(replace(f, evidence=()))
    missing = tuple(e for e in stored.findings[0].evidence if e not in have)
    if missing:
        opener = current.findings[0]
        current.findings[0] = replace(opener, evidence=opener.evidence + missing)


def exact_us(when: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp can be off by one).

    >>> exact_us(datetime(1970, 1, 1, 0, 0, 1, 7, tzinfo=UTC))
    1000007
    """
    return (when - _EPOCH) // timedelta(microseconds=1)


def _id(f: Finding) -> str:
    return alert_id(f.detector, f.identity, f.start_us)
