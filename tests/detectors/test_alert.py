from __future__ import annotations

from detectors.alert import Finding, Incident, alert_id


def finding(
    detector: str,
    start: int,
    evidence: tuple[str, ...] = ("e1",),
    severity: str = "medium",
    score: float = 2.0,
) -> Finding:
    return Finding(
        detector,
        "svc",
        start,
        start + 10,
        start + 1,
        score,
        1.0,
        severity,
        f"{detector} saw something.",
        evidence,
    )


def test_ids_are_deterministic_and_distinct():
    assert alert_id("a", "svc", 1) == alert_id("a", "svc", 1)
    assert (
        len(
            {
                alert_id("a", "svc", 1),
                alert_id("b", "svc", 1),
                alert_id("a", "x", 1),
                alert_id("a", "svc", 2),
            }
        )
        == 4
    )


def test_incident_groups_findings_and_bumps_severity():
    incident = Incident("svc", baseline_version=7)
    assert incident.add(finding("new_source", 100, ("e1", "e2")))
    assert incident.add(finding("unusual_time", 50, ("e2", "e3"), score=5.0))
    assert not incident.add(finding("new_source", 100, ("e9",)))  # the same finding again
    alert = incident.alert()
    assert alert.detectors == ["new_source", "unusual_time"]
    assert alert.detector == ["new_source", "unusual_time"]
    assert alert.severity == "high"  # two mediums agreeing
    assert alert.evidence == ["e2", "e3", "e1"] and alert.evidence_count == 3
    assert alert.score == 5.0 and alert.baseline_version == 7
    assert alert.explanation.startswith("unusual_time saw something. Also: new_source")
    # The id is the opening finding's, even when an earlier finding joins later: an alert
    # already delivered is updated, never raised again under a new id.
    assert alert.id == alert_id("new_source", "svc", 100)


def test_a_finding_judged_again_with_more_evidence_replaces_the_old_one():
    incident = Incident("svc")
    assert incident.add(finding("rate_spike", 0, ("e1",)))
    assert incident.add(finding("rate_spike", 0, ("e1", "e2", "e3")))
    assert not incident.add(finding("rate_spike", 0, ("e1", "e2")))
    alert = incident.alert()
    assert alert.evidence == ["e1", "e2", "e3"] and len(incident.findings) == 1


def test_single_detector_alert_keeps_a_plain_detector_name():
    incident = Incident("svc")
    incident.add(finding("root_token", 0, severity="critical"))
    alert = incident.alert()
    assert alert.detector == "root_token" and alert.severity == "critical"


def test_the_most_severe_finding_leads_the_explanation():
    incident = Incident("root")
    incident.add(finding("unexpected_accessor", 0, score=9.0))
    incident.add(finding("root_token", 0, severity="critical", score=1.0))
    alert = incident.alert()
    assert alert.explanation.startswith("root_token saw something. Also: unexpected_accessor")
    assert alert.severity == "critical" and alert.score == 9.0
