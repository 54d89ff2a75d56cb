from __future__ import annotations

from datetime import timedelta

import numpy as np
from world import after, frame, row, us

from detectors.alert import Finding, Incident
from detectors.engine import DETECTORS, EVENT_LEVEL, Detection
from detectors.events import HOUR_US, Events
from detectors.settings import DetectorsConfig


def _run(detection: Detection, rows: list, hours: int) -> list:
    ev = frame(rows)
    changed = []
    start = us(after(0))
    for h in range(hours):
        lo, hi = np.searchsorted(ev.ts_us, [start + h * HOUR_US, start + (h + 1) * HOUR_US])
        part = ev.slice(int(lo), int(hi))
        changed += detection.run(part, start + h * HOUR_US, start + (h + 1) * HOUR_US)
    return changed


def test_every_detector_is_registered_and_configurable():
    cfg = DetectorsConfig()
    for name in DETECTORS:
        assert getattr(cfg, name).enabled


def test_findings_close_together_are_one_incident(trained):
    detection = Detection(trained, DetectorsConfig())
    rows = [
        row("orders/orders-api", after(2), "secret/payments/db"),
        row("orders/orders-api", after(9), "secret/payments/stripe-key"),
        row("orders/orders-api", after(70), "secret/payments/db"),
    ]
    _run(detection, rows, 72)
    incidents = detection.incidents()
    # 2h and 9h are one incident, 70h another; other detectors may add findings to them.
    assert [sum(f.detector == "unexpected_accessor" for f in i.findings) for i in incidents] == [
        2,
        1,
    ]


def test_an_attacker_cannot_teach_the_model(trained):
    detection = Detection(trained, DetectorsConfig())
    r = trained.index["orders/orders-api"]
    rows = [row("orders/orders-api", after(h), "secret/payments/db") for h in range(0, 72, 12)]
    _run(detection, rows, 72)
    assert "secret/payments/db" not in trained.secrets[r]
    raised = [
        f for i in detection.incidents() for f in i.findings if f.detector == "unexpected_accessor"
    ]
    assert len(raised) == 6  # raised every time


def test_disabled_detectors_stay_silent(trained):
    cfg = DetectorsConfig()
    cfg = cfg.model_copy(
        update={
            "root_token": cfg.root_token.model_copy(update={"enabled": False}),
            "unexpected_accessor": cfg.unexpected_accessor.model_copy(update={"enabled": False}),
        }
    )
    detection = Detection(trained, cfg)
    assert _run(detection, [row("root", after(0.5), kind="root")], 1) == []


def test_same_stream_same_alerts(trained_once):
    from detectors.baseline import Baselines

    def fresh() -> Detection:
        base = Baselines.from_rows(trained_once.to_rows(), **trained_once.meta())
        base.model = trained_once.model
        return Detection(base, DetectorsConfig())

    rows = [
        row("root", after(1), kind="root"),
        row("alice", after(3) + timedelta(minutes=5), kind="human", ip="192.168.10.4"),
    ]
    one, two = fresh(), fresh()
    _run(one, rows, 6)
    _run(two, rows, 6)
    assert [i.alert() for i in one.incidents()] == [i.alert() for i in two.incidents()]
    assert len(one.incidents()) == 2


def _finding(identity: str, hour: int) -> Finding:
    start = 1_770_000_000_000_000 // HOUR_US * HOUR_US + hour * HOUR_US
    return Finding(
        "unexpected_accessor",
        identity,
        start,
        start + HOUR_US,
        start,
        5.0,
        3.0,
        "medium",
        "read a secret of others",
        (f"e{hour}",),
    )


def test_judged_again_an_incident_growing_into_one_raised_before_joins_it(trained):
    """After a takeover the next owner judges again with more events (or more knowledge of
    other identities) than the first judgement had: an incident it opens earlier than a
    raised one, then grows into it, is that one, under its id; the younger id is never
    stored."""
    detection = Detection(trained, DetectorsConfig())
    gap = int(DetectorsConfig().group_gap_hours)
    raised = Incident("orders/api", baseline_version=1)
    raised.add(_finding("orders/api", 60))
    detection.known = {"orders/api": [raised]}
    detection.raised = {raised.id}
    first = detection._group([_finding("orders/api", 60 - gap - 5)])  # too far to join yet
    assert len(first) == 1 and first[0].id != raised.id
    younger = first[0].id
    changed = detection._group([_finding("orders/api", 60 - gap + 2)])  # within its gap
    assert [i.id for i in changed] == [raised.id]
    assert len(changed[0].findings) == 3
    assert detection.open["orders/api"] is raised
    assert detection.merged == {younger}


def test_a_stored_incident_is_never_folded_into_another(trained):
    detection = Detection(trained, DetectorsConfig())
    gap = int(DetectorsConfig().group_gap_hours)
    raised = Incident("orders/api", baseline_version=1)
    raised.add(_finding("orders/api", 60))
    detection.known = {"orders/api": [raised]}
    first = detection._group([_finding("orders/api", 60 - gap - 5)])
    detection.raised = {raised.id, first[0].id}  # its alert was stored meanwhile
    changed = detection._group([_finding("orders/api", 60 - gap + 2)])
    assert [i.id for i in changed] == [first[0].id]
    assert detection.merged == set()


def test_a_raised_incident_judged_again_never_grows_over_a_younger_raised_one(trained):
    """After a takeover the snapshot's open incident is raised, and so is a younger one the
    previous owner raised after the snapshot. Judged again, findings the first judgement
    missed can bridge the two: both stay as raised, the older one ending where the younger
    begins (before, it grew over the younger one's findings, two alerts for one span)."""
    detection = Detection(trained, DetectorsConfig())
    older = Incident("orders/api", baseline_version=1)
    older.add(_finding("orders/api", 0))
    younger = Incident("orders/api", baseline_version=1)
    younger.add(_finding("orders/api", 60))
    detection.open = {"orders/api": older}
    detection.known = {"orders/api": [younger]}
    detection.raised = {older.id, younger.id}
    hours = [30, 55, 60, 62, 90]  # 30 and 55 bridge; 60 is the younger one's own
    changed = detection._group([_finding("orders/api", h) for h in hours])
    assert {i.id for i in changed} == {older.id, younger.id}
    assert older.end_us < younger.start_us
    assert len(older.findings) == 3 and len(younger.findings) == 3
    assert detection.open["orders/api"] is younger
    assert [i.id for i in detection.incidents()] == [older.id, younger.id]


def _root_calls(minutes: list[int]) -> list:
    return [
        row("root", after(3) + timedelta(minutes=m), f"secret/p/{m}", kind="root") for m in minutes
    ]


def _seen(rows: list):
    """`peek_new`'s view of the batch so far: the events of the identities asked for."""
    ev = frame(rows)

    def of(who: list[str], most: int) -> Events:
        names, counts = np.unique(ev.identity, return_counts=True)
        small = [n for n, k in zip(names, counts, strict=True) if n in who and k <= most]
        return ev.take(np.isin(ev.identity, small))

    return of


def test_peek_new_raises_at_once_and_judges_a_known_key_over_the_whole_batch(trained):
    start, end = us(after(3)), us(after(4))
    detection = Detection(trained, DetectorsConfig())
    first = _root_calls([1])
    [incident] = detection.peek(frame(first), start, end)
    later = _root_calls([2, 3])
    [grown] = detection.peek_new(frame(later), _seen(first + later), start, end, most=100)
    assert grown is incident
    [finding] = incident.findings
    assert set(finding.evidence) == {r.event_id for r in first + later}
    assert "3 requests" in finding.explanation  # judged over the batch, not the new part


def test_peek_new_leaves_a_busy_identity_to_the_next_whole_peek(trained):
    start, end = us(after(3)), us(after(4))
    detection = Detection(trained, DetectorsConfig())
    first = _root_calls([1])
    detection.peek(frame(first), start, end)
    later = _root_calls([2, 3])
    assert detection.peek_new(frame(later), _seen(first + later), start, end, most=2) == []
    assert len(detection.open["root"].findings[0].evidence) == 1


def test_peek_new_judges_only_what_a_part_alone_shows(trained):
    """An enumeration is a count over the batch: a part cannot show it, the whole can."""
    start, end = us(after(3)), us(after(4))
    rows = [
        row("orders/orders-api", after(3) + timedelta(seconds=s), f"secret/orders/x{s}")
        for s in range(60)
    ]
    whole = Detection(trained, DetectorsConfig()).peek(frame(rows), start, end)
    assert "enumeration" in {f.detector for i in whole for f in i.findings}
    part = Detection(trained, DetectorsConfig()).peek_new(
        frame(rows), _seen(rows), start, end, most=1000
    )
    assert {f.detector for i in part for f in i.findings} <= EVENT_LEVEL


def test_a_part_counts_the_identities_held_back_before_as_a_forming_fleet(trained, monkeypatch):
    """A whole peek held back three deviating services (perhaps the start of a fleet);
    a fourth deviating in the next part is held back too, not raised alone."""

    def deviates(base, batch, cfg):
        return [
            Finding(
                "unusual_time",
                str(i),
                batch.start_us,
                batch.end_us,
                batch.start_us,
                1.0,
                0.5,
                "medium",
                "x",
                (str(i),),
            )
            for i in sorted(set(batch.ev.identity))
        ]

    monkeypatch.setitem(DETECTORS, "unusual_time", deviates)
    start, end = us(after(3)), us(after(4))
    three = [row(f"svc-{n}", after(3.1)) for n in range(3)]
    fourth = [row("svc-3", after(3.2))]
    detection = Detection(trained, DetectorsConfig())
    assert detection.peek(frame(three), start, end) == []
    assert detection.peek_new(frame(fourth), _seen(three + fourth), start, end, 100) == []
    alone = Detection(trained, DetectorsConfig())
    assert [i.identity for i in alone.peek_new(frame(fourth), _seen(fourth), start, end, 100)] == [
        "svc-3"
    ]
