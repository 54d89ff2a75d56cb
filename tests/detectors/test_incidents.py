from __future__ import annotations

import numpy as np

from detectors.alert import Finding, Incident
from detectors.events import HOUR_US
from detectors.incidents import IncidentDoc, from_alert, merge

T0 = 1_780_000_000_000_000 // HOUR_US * HOUR_US


def _finding(detector: str, hour: int, evidence: tuple[str, ...]) -> Finding:
    start = T0 + hour * HOUR_US
    return Finding(detector, "bob", start, start + HOUR_US, start + 7, 1.25, 1.0, "high",
                   f"{detector} saw bob.", evidence)  # fmt: skip


def _incident() -> Incident:
    incident = Incident("bob", baseline_version=4)
    incident.add(_finding("new_source", 0, ("e1", "e2")))
    incident.add(_finding("unusual_time", 1, ("e3",)))
    return incident


def test_an_incident_document_restores_the_incident_exactly():
    incident = _incident()
    doc = IncidentDoc.of(incident)
    again = IncidentDoc.model_validate_json(doc.model_dump_json()).incident()
    assert again == incident and again.alert() == incident.alert()


def test_numpy_values_are_kept_as_plain_numbers():
    f = _finding("rate_spike", 0, ("e",))
    odd = Finding(f.detector, f.identity, np.int64(f.start_us), f.end_us, f.at_us,  # type: ignore[arg-type]
                  np.float64(2.5), f.threshold, f.severity, f.explanation, f.evidence)  # fmt: skip
    incident = Incident("bob")
    incident.add(odd)
    doc = IncidentDoc.of(incident).model_dump(mode="json")
    assert type(doc["findings"][0]["start_us"]) is int
    assert type(doc["findings"][0]["score"]) is float


def test_an_incident_rebuilt_from_its_alert_keeps_its_id_and_evidence():
    incident = _incident()
    alert = incident.alert()
    rebuilt = from_alert(alert)
    assert rebuilt.id == incident.id
    assert [f.key for f in rebuilt.findings] == [f.key for f in incident.findings]
    assert rebuilt.findings[0].evidence == ("e1", "e2", "e3")  # the alert's, on the opener


def test_merge_adds_what_the_stored_alert_knows_beyond_the_kept_incident():
    kept = Incident("bob", baseline_version=4)
    kept.add(_finding("new_source", 0, ("e1",)))
    stored = from_alert(_incident().alert())
    merge(kept, stored)
    assert [f.detector for f in kept.findings] == ["new_source", "unusual_time"]
    assert set(kept.findings[0].evidence) == {"e1", "e2", "e3"}
