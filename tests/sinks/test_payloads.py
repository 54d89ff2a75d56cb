"""Payload shapes: native, ECS and OCSF Detection Finding (class_uid 2004)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from outbox import alert

from pipeline.sinks.payloads import (
    AlertRecord,
    FindingRecord,
    NativeRecord,
    ecs,
    native_record,
    ocsf,
    render,
)


def _record(revision: int = 1, **verdict: object) -> dict:
    a = alert(
        "team-a/api",
        severity="high",
        detector="unexpected_accessor",
        evidence=tuple(f"e{i}" for i in range(10)),
        more=(("new_source", "medium"),),
    )
    return native_record(a, revision, repeats=2, evidence_limit=3, **verdict)


def test_native_keeps_the_alert_and_adds_delivery_fields() -> None:
    record = _record()
    assert record["evidence"] == ["e0", "e1", "e2"] and record["evidence_count"] == 10
    assert (record["revision"], record["repeats"], record["resolution"]) == (1, 2, None)
    assert "resolved_by" not in record
    resolved = _record(
        resolution="false_positive",
        resolved_by="ana",
        resolved_at=datetime(2026, 5, 2, tzinfo=UTC),
        note="planned",
    )
    assert resolved["resolved_at"] == "2026-05-02T00:00:00+00:00"
    assert render("native", record) == record


def test_ecs_alert_document() -> None:
    record = _record()
    doc = ecs(record)
    assert doc["@timestamp"] == record["timestamp"]
    event = doc["event"]
    assert (event["kind"], event["id"], event["severity"]) == ("alert", record["id"], 99)
    assert (event["start"], event["end"]) == (record["window_start"], record["window_end"])
    assert doc["user"]["name"] == doc["related"]["user"][0] == "team-a/api"
    assert doc["rule"]["name"] == "new_source, unexpected_accessor"
    assert doc["message"] == record["explanation"] == event["reason"]
    assert doc["secretwatch"]["alert"]["revision"] == 1


@pytest.mark.parametrize(
    ("revision", "verdict", "activity", "status_id"),
    [
        (1, {}, 1, 1),
        (4, {}, 2, 1),
        (5, {"resolution": "false_positive"}, 3, 3),
        (5, {"resolution": "true_positive"}, 3, 4),
    ],
)
def test_ocsf_detection_finding(
    revision: int, verdict: dict, activity: int, status_id: int
) -> None:
    record = _record(revision, **verdict)
    doc = ocsf(record)
    assert (doc["class_uid"], doc["category_uid"], doc["class_name"]) == (
        2004,
        2,
        "Detection Finding",
    )
    assert doc["activity_id"] == activity and doc["type_uid"] == 200400 + activity
    assert doc["status_id"] == status_id
    assert (doc["severity_id"], doc["severity"]) == (5, "Critical")  # two detectors agree
    stamp = datetime.fromisoformat(record["timestamp"])
    assert doc["time"] == int(stamp.timestamp() * 1000)  # epoch milliseconds
    assert doc["start_time"] < doc["end_time"]
    info = doc["finding_info"]
    assert info["uid"] == record["id"] and info["desc"] == record["explanation"]
    assert info["title"] == "critical: new_source, unexpected_accessor on team-a/api"
    assert info["types"] == ["new_source", "unexpected_accessor"]
    assert [e["uid"] for e in info["related_events"]] == ["e0", "e1", "e2"]
    assert info["related_events_count"] == 10
    assert info["analytic"]["type_id"] in (0, 1, 2, 3, 4, 99)
    assert doc["metadata"]["product"]["name"] == "secretwatch"
    assert doc["metadata"]["version"].count(".") == 2
    assert doc["is_alert"] is (not verdict)
    # Evidence Artifacts need at least one of actor, api, data, ... (OCSF constraint).
    assert [e["name"] for e in doc["evidences"]] == ["new_source", "unexpected_accessor"]
    assert all(e["actor"]["user"]["name"] == "team-a/api" for e in doc["evidences"])
    assert doc["unmapped"]["revision"] == revision


def test_the_typed_records_name_exactly_the_keys_detection_stores() -> None:
    """`AlertRecord` types the JSON of `detectors.alert.Alert`: a field added to or dropped
    from the alert must be added to or dropped from the record type too."""
    stored = alert(more=(("dormant", "low"),))
    assert set(stored) == AlertRecord.__required_keys__ | AlertRecord.__optional_keys__
    assert set(stored["findings"][0]) == FindingRecord.__required_keys__
    resolved = _record(
        resolution="true_positive",
        resolved_by="ana",
        resolved_at=datetime(2026, 5, 2, tzinfo=UTC),
        note="n",
    )
    assert set(resolved) == NativeRecord.__required_keys__ | NativeRecord.__optional_keys__
