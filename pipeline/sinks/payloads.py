"""Payload shapes a sink can send: `native` (the alert record as stored, plus its delivery
revision and verdict), `ecs` (Elastic Common Schema, `event.kind: alert`) and `ocsf` (OCSF
Detection Finding, class_uid 2004). Each is a pure function of the native record, so every
sink renders the same alert the same way.

>>> record = native_record(EXAMPLE, revision=2, repeats=0, evidence_limit=1)
>>> record["revision"], record["evidence"], record["evidence_count"]
(2, ['e1'], 2)
>>> ocsf(record)["type_uid"], ecs(record)["event"]["kind"]
(200402, 'alert')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import metadata
from typing import Any, NotRequired, TypedDict, cast

from pipeline.store.base import PendingDelivery

PRODUCT = "secretwatch"
OCSF_VERSION = "1.3.0"
ECS_VERSION = "8.17.0"
# OCSF severity_id and ECS event.severity (Elastic's detection-rule scale) per severity.
_OCSF_SEVERITY = {
    "low": (2, "Low"),
    "medium": (3, "Medium"),
    "high": (4, "High"),
    "critical": (5, "Critical"),
}
_ECS_SEVERITY = {"low": 21, "medium": 47, "high": 73, "critical": 99}
# OCSF Finding status_id: New, or the analyst's verdict.
_OCSF_STATUS = {
    None: (1, "New"),
    "true_positive": (4, "Resolved"),
    "false_positive": (3, "Suppressed"),
}


class FindingRecord(TypedDict):
    """One finding as an alert lists it (`detectors.alert.FindingDoc` as JSON)."""

    detector: str
    score: float
    threshold: float
    severity: str
    window_start: str
    window_end: str
    explanation: str
    evidence_count: int


class AlertRecord(TypedDict):
    """An alert as detection stored it: `detectors.alert.Alert` as JSON (times as ISO text),
    kept as its dict so that every key the store holds reaches the receiver unchanged.
    `detectors` is missing from alerts stored before it existed; `detector` names them."""

    id: str
    detector: str | list[str]
    detectors: NotRequired[list[str]]
    identity: str
    severity: str
    score: float
    timestamp: str
    window_start: str
    window_end: str
    explanation: str
    evidence: list[str]
    evidence_count: int
    baseline_version: int
    findings: list[FindingRecord]


class NativeRecord(AlertRecord):
    """What a sink is handed and renders: the alert record with its delivery revision,
    folded repeats and the analyst's verdict (whose details only a resolved alert has)."""

    revision: int
    repeats: int
    resolution: str | None
    resolved_by: NotRequired[str | None]
    resolved_at: NotRequired[str | None]
    note: NotRequired[str | None]


def stored_alert(body: Mapping[str, Any]) -> AlertRecord:
    """A stored alert body (JSON the store decoded) as the record it is."""
    return cast(AlertRecord, body)


EXAMPLE: AlertRecord = {
    "id": "swa-4c157007385339a413686f6c",
    "detector": "root_token",
    "detectors": ["root_token"],
    "identity": "root",
    "severity": "critical",
    "score": 1.0,
    "timestamp": "2026-05-29T10:32:29.871237Z",
    "window_start": "2026-05-29T10:00:00Z",
    "window_end": "2026-05-29T11:00:00Z",
    "explanation": "the root token made 2 requests at 10:32 on Friday 2026-05-29.",
    "evidence": ["e1", "e2"],
    "evidence_count": 2,
    "baseline_version": 7,
    "findings": [
        {
            "detector": "root_token",
            "score": 1.0,
            "threshold": 1.0,
            "severity": "critical",
            "window_start": "2026-05-29T10:00:00+00:00",
            "window_end": "2026-05-29T11:00:00+00:00",
            "explanation": "the root token made 2 requests.",
            "evidence_count": 2,
        }
    ],
}


def _version() -> str:
    try:
        return metadata.version(PRODUCT)
    except metadata.PackageNotFoundError:  # running from a checkout without install
        return "0"


VERSION = _version()


def native_record(
    alert: AlertRecord,
    revision: int,
    repeats: int,
    evidence_limit: int,
    resolution: str | None = None,
    resolved_by: str | None = None,
    resolved_at: datetime | None = None,
    note: str | None = None,
) -> NativeRecord:
    """The alert as stored, evidence ids cut to `evidence_limit` (`evidence_count` keeps
    the total), with its delivery revision, folded repeats and the analyst's verdict."""
    record = cast(NativeRecord, dict(alert))
    record["evidence"] = list(alert.get("evidence", []))[:evidence_limit]
    record["revision"] = revision
    record["repeats"] = repeats
    record["resolution"] = resolution
    if resolution is not None:
        record["resolved_by"] = resolved_by
        record["resolved_at"] = resolved_at.isoformat() if resolved_at else None
        record["note"] = note
    return record


def from_pending(p: PendingDelivery, evidence_limit: int) -> NativeRecord:
    return native_record(
        stored_alert(p.alert),
        p.revision,
        p.repeats,
        evidence_limit,
        p.resolution,
        p.resolved_by,
        p.resolved_at,
        p.note,
    )


def native(record: NativeRecord) -> dict[str, Any]:
    return dict(record)


def _ms(value: Any) -> int | None:
    """Epoch milliseconds (OCSF timestamp_t) from an ISO string or datetime."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return int(when.timestamp() * 1000)


def detectors_of(record: AlertRecord) -> list[str]:
    """The detectors behind an alert (from `detector` in alerts stored before `detectors`,
    which named just one)."""
    return list(record.get("detectors") or [record.get("detector")])  # type: ignore[list-item]


def title(record: AlertRecord) -> str:
    """A one-line headline, e.g. `critical: root_token on root`."""
    return f"{record['severity']}: {', '.join(detectors_of(record))} on {record['identity']}"


def ecs(record: NativeRecord) -> dict[str, Any]:
    """An Elastic Common Schema alert document; the whole alert under `secretwatch.alert`."""
    detectors = detectors_of(record)
    return {
        "@timestamp": record["timestamp"],
        "ecs": {"version": ECS_VERSION},
        "message": record["explanation"],
        "event": {
            "kind": "alert",
            "category": ["iam"],
            "type": ["info"],
            "id": record["id"],
            "severity": _ECS_SEVERITY.get(record["severity"], 0),
            "start": record["window_start"],
            "end": record["window_end"],
            "reason": record["explanation"],
            "provider": PRODUCT,
            "module": PRODUCT,
            "dataset": f"{PRODUCT}.alert",
        },
        "rule": {"name": ", ".join(detectors), "id": detectors[0], "ruleset": PRODUCT},
        "user": {"name": record["identity"]},
        "related": {"user": [record["identity"]]},
        "observer": {"vendor": PRODUCT, "product": PRODUCT, "version": VERSION},
        "tags": detectors,
        "labels": {"severity": record["severity"]},
        PRODUCT: {"alert": dict(record)},
    }


def ocsf(record: NativeRecord) -> dict[str, Any]:
    """An OCSF Detection Finding (class 2004, category 2 Findings). activity_id is 1
    Create for a first revision, 2 Update for a grown or re-judged one, 3 Close once an
    analyst resolved it; status_id carries the verdict."""
    resolution = record.get("resolution")
    activity = 3 if resolution else (1 if record.get("revision", 1) == 1 else 2)
    severity_id, severity = _OCSF_SEVERITY.get(record["severity"], (0, "Unknown"))
    status_id, status = _OCSF_STATUS.get(resolution, (99, "Other"))
    identity = record["identity"]
    evidence = list(record.get("evidence", []))
    finding = {
        "uid": record["id"],
        "title": title(record),
        "desc": record["explanation"],
        "types": detectors_of(record),
        "analytic": {
            "name": ", ".join(detectors_of(record)),
            "type_id": 2,
            "type": "Behavioral",
            "uid": detectors_of(record)[0],
        },
        "first_seen_time": _ms(record["window_start"]),
        "last_seen_time": _ms(record["window_end"]),
        "created_time": _ms(record["timestamp"]),
        "related_events": [{"uid": e} for e in evidence],
        "related_events_count": record.get("evidence_count", len(evidence)),
        "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION},
    }
    out: dict[str, Any] = {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": {1: "Create", 2: "Update", 3: "Close"}[activity],
        "type_uid": 2004 * 100 + activity,
        "type_name": f"Detection Finding: {['', 'Create', 'Update', 'Close'][activity]}",
        "time": _ms(record["timestamp"]),
        "start_time": _ms(record["window_start"]),
        "end_time": _ms(record["window_end"]),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "is_alert": resolution is None,
        "message": record["explanation"],
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{record['id']}.r{record.get('revision', 1)}",
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION},
        },
        "finding_info": finding,
        "evidences": [
            {
                "name": f["detector"],
                "actor": {"user": {"name": identity}},
                "data": {k: v for k, v in f.items() if k != "detector"},
            }
            for f in record.get("findings", [])
        ],
        "unmapped": {
            "revision": record.get("revision"),
            "repeats": record.get("repeats", 0),
            "score": record.get("score"),
            "baseline_version": record.get("baseline_version"),
        },
    }
    if resolution:
        out["comment"] = record.get("note")
    return out


FORMATS: dict[str, Callable[[NativeRecord], dict[str, Any]]] = {
    "native": native,
    "ecs": ecs,
    "ocsf": ocsf,
}


def render(fmt: str, record: NativeRecord) -> dict[str, Any]:
    """The record in the sink's `format`."""
    return FORMATS[fmt](record)
