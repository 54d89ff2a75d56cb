"""Findings (what one detector saw) and alerts (what an analyst gets: one incident).

A finding's key is (detector, identity, window start), so the same finding is never raised
twice, however often a batch is replayed. Findings about one identity that come within
`group_gap` of each other are one incident, whatever detectors saw them: the alert carries
all their evidence and explanations, and its id is derived from the incident's first finding,
so it is the same on every run over the same events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_serializer,
    model_validator,
)

from detectors.settings import SEVERITIES

MAX_EVIDENCE = 5000  # event ids kept per alert; the count says how many there were


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's verdict on one identity in one window."""

    detector: str
    identity: str
    start_us: int  # window start (part of the key)
    end_us: int
    at_us: int  # first evidence event
    score: float
    threshold: float
    severity: str
    explanation: str
    evidence: tuple[str, ...]
    # A finding about several identities at once (detectors/fleet.py) names all of them; its
    # `identity` is the one whose incident it joins. Empty for a finding about one identity.
    identities: tuple[str, ...] = ()
    # The outside network a new-source finding saw (detectors/fleet.py tags it, so later
    # batches can tell which identities shared it), "" otherwise.
    network: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.detector, self.identity, self.start_us)

    @property
    def strength(self) -> float:
        """How far past its threshold (1.0 = just at it): comparable across detectors."""
        return self.score / self.threshold if self.threshold else self.score


class FindingDoc(BaseModel):
    """One finding as its alert lists it: the alert holds the evidence, the finding its
    count. Window times are written as `isoformat()` text (`+00:00`), as always."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str
    score: float
    threshold: float
    severity: str
    window_start: datetime
    window_end: datetime
    explanation: str
    evidence_count: int

    @classmethod
    def of(cls, f: Finding) -> FindingDoc:
        return cls(
            detector=f.detector,
            score=round(f.score, 3),
            threshold=f.threshold,
            severity=f.severity,
            window_start=_dt(f.start_us),
            window_end=_dt(f.end_us),
            explanation=f.explanation,
            evidence_count=len(f.evidence),
        )

    @field_serializer("window_start", "window_end")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()


class Alert(BaseModel):
    """The alert record written to files, the store and SIEMs.

    On the wire an alert also carries `detector`: the one detector, or the list when
    several agreed (what receivers read before `detectors` existed). It is derived from
    `detectors`, written right after `id`, and dropped when an alert is read back.

    `identities` names every identity of an incident that spans several (a shared outside
    network, a fleet-wide deviation; `identity` is the first of them). It is written only
    then, so an alert about one identity reads and writes as it always did."""

    model_config = ConfigDict(extra="forbid")

    id: str
    detectors: list[str]
    identity: str
    severity: str
    score: float
    timestamp: datetime
    window_start: datetime
    window_end: datetime
    explanation: str
    evidence: list[str]
    evidence_count: int
    baseline_version: int
    findings: list[FindingDoc]
    identities: list[str] = Field(default_factory=list)

    @property
    def detector(self) -> str | list[str]:
        """The wire's `detector`: the one detector, or all of them when several agreed."""
        return self.detectors[0] if len(self.detectors) == 1 else list(self.detectors)

    @model_validator(mode="before")
    @classmethod
    def _drop_detector(cls, data: Any) -> Any:  # noqa: ANN401 - whatever is validated
        if isinstance(data, dict) and "detector" in data:
            return {k: v for k, v in data.items() if k != "detector"}
        return data

    @model_serializer(mode="wrap")
    def _with_detector(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc: dict[str, Any] = handler(self)
        if not doc.get("identities"):
            doc.pop("identities", None)
        head = {"id": doc.pop("id"), "detector": self.detector}
        return {**head, **doc}


def alert_id(detector: str, identity: str, start_us: int) -> str:
    """Deterministic id of an incident: a hash of its first finding's key.

    >>> alert_id("root_token", "root", 0) == alert_id("root_token", "root", 0)
    True
    """
    digest = hashlib.sha256(f"{detector}\x00{identity}\x00{start_us}".encode()).hexdigest()
    return f"swa-{digest[:24]}"


@dataclass
class Incident:
    """An open or closed group of findings about one identity (or, through a finding that
    names several, about all of them: see `identities`)."""

    identity: str
    findings: list[Finding] = field(default_factory=list)
    keys: set[tuple[str, str, int]] = field(default_factory=set)
    baseline_version: int = 0
    # (start, end) of the findings, kept as they are added: grouping asks for the end of an
    # incident for every finding, and long incidents hold hundreds of them.
    _span: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)
    # Each finding's entry in the alert, made once per finding (an incident's alert is made
    # again whenever it grows).
    _docs: dict[tuple[str, str, int], tuple[Finding, FindingDoc]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def start_us(self) -> int:
        return self._window()[0]

    @property
    def end_us(self) -> int:
        return self._window()[1]

    def _window(self) -> tuple[int, int]:
        if self._span is None:
            self._span = (
                min(f.start_us for f in self.findings),
                max(f.end_us for f in self.findings),
            )
        return self._span

    @property
    def id(self) -> str:
        """The id of the finding that opened the incident: it never changes as the
        incident grows, so an alert already delivered is updated, never raised again."""
        first = self.findings[0]
        return alert_id(first.detector, first.identity, first.start_us)

    def add(self, finding: Finding) -> bool:
        """Add a finding; one with a known key replaces the old one if it has more
        evidence (a window judged again once complete). True if anything changed."""
        if finding.key in self.keys:
            for i, old in enumerate(self.findings):
                if old.key == finding.key:
                    if len(finding.evidence) <= len(old.evidence):
                        return False
                    self.findings[i] = finding
                    return True
        self.keys.add(finding.key)
        self.findings.append(finding)
        if self._span is not None:  # a finding with a known key has the same window
            start, end = self._span
            self._span = (min(start, finding.start_us), max(end, finding.end_us))
        return True

    def alert(self) -> Alert:
        findings = sorted(self.findings, key=lambda f: (f.start_us, f.detector))
        detectors = sorted({f.detector for f in findings})
        rank = max(SEVERITIES.index(f.severity) for f in findings)
        if len(detectors) > 1:  # independent signals agreeing make it more likely real
            rank = min(rank + 1, len(SEVERITIES) - 1)
        evidence: list[str] = []
        seen: set[str] = set()
        for f in findings:
            for e in f.evidence:
                if e not in seen:
                    seen.add(e)
                    evidence.append(e)
        # The most severe finding leads (root use before a stray read), then the strongest.
        lead = max(findings, key=lambda f: (SEVERITIES.index(f.severity), f.strength))
        explanation = lead.explanation
        # One line per other detector (its strongest finding), then a count: an analyst
        # reads the incident, the findings list holds every detail.
        others: dict[str, str] = {}
        for f in sorted(findings, key=lambda f: -f.strength):
            if f.detector != lead.detector:
                others.setdefault(f.detector, f.explanation.rstrip("."))
        if others:
            explanation += " Also: " + "; ".join(others.values()) + "."
        rest = len(findings) - 1 - len(others)
        if rest:
            explanation += f" ({rest} more finding{'s' if rest > 1 else ''} in this incident.)"
        return Alert(
            id=self.id,
            detectors=detectors,
            identity=self.identity,
            severity=SEVERITIES[rank],
            score=round(max(f.strength for f in findings), 3),
            timestamp=_dt(min(f.at_us for f in findings)),
            window_start=_dt(self.start_us),
            window_end=_dt(self.end_us),
            explanation=explanation,
            evidence=evidence[:MAX_EVIDENCE],
            evidence_count=len(evidence),
            baseline_version=self.baseline_version,
            findings=[self._doc(f) for f in findings],
            identities=self.identities(),
        )

    def identities(self) -> list[str]:
        """Every identity the incident's findings name, its own first; empty when that is
        the only one."""
        named = {i for f in self.findings for i in (f.identities or (f.identity,))}
        if named <= {self.identity}:
            return []
        first = [self.identity] if self.identity in named else []
        return first + sorted(named - {self.identity})

    def _doc(self, f: Finding) -> FindingDoc:
        held = self._docs.get(f.key)
        if held is not None and held[0] is f:
            return held[1]
        doc = FindingDoc.of(f)
        self._docs[f.key] = (f, doc)
        return doc


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)
