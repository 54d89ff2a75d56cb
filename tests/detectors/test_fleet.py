"""Many identities deviating at once are one fleet-wide finding, explained and kept low
when they re-read secrets just rotated."""

from __future__ import annotations

import pytest
from cross import events, judge, scenario_gen, trained

from detectors.alert import Alert
from detectors.baseline import Baselines
from detectors.events import Events
from detectors.fleet import FLEET
from detectors.settings import SEVERITIES, DetectorsConfig
from pipeline.sinks.router import refusal
from pipeline.sinks.settings import PagerDutySink

CFG = DetectorsConfig()


@pytest.fixture(scope="module")
def history() -> tuple[Events, Baselines, int]:
    """The training window is the same in every variant: train once."""
    sc = scenario_gen.mass_rotation_scenario()
    ev = events(sc["rows"])
    return ev, trained(ev, sc["train_until"], CFG), sc["train_until"]


def _alerts(
    history, cfg: DetectorsConfig = CFG, peek: int = 0, whole_every: int = 1, **variant: object
) -> list[Alert]:
    base = history[1]
    sc = scenario_gen.mass_rotation_scenario(**variant)  # type: ignore[arg-type]
    rows = events(sc["rows"])
    return judge(rows, base, sc["train_until"], 24, cfg, peek, whole_every=whole_every)


def test_a_mass_rotation_then_twenty_services_rereading_is_one_low_finding(history):
    [alert] = _alerts(history)
    services = scenario_gen.mass_rotation_scenario()["services"]
    assert (alert.identity, alert.detectors, alert.severity) == (FLEET, ["fleet"], "low")
    assert alert.identities == services
    assert alert.explanation.startswith(
        "20 services re-read secrets rotated at 12:00 on Tuesday 2026-03-17 by ops/rotator"
    )
    assert alert.evidence_count >= 20 * 40  # every re-read
    paging = PagerDutySink.model_fields["min_severity"].default
    assert refusal(type("Cfg", (), {"min_severity": paging, "detectors": None}), alert.model_dump())
    assert SEVERITIES.index(alert.severity) < SEVERITIES.index(CFG.fleet.severity)


def test_without_a_rotation_it_is_one_unexplained_fleet_finding(history):
    [alert] = _alerts(history, rotate_minutes=None)
    assert (alert.identity, alert.severity) == (FLEET, CFG.fleet.severity)
    assert "deviated together" in alert.explanation
    assert "rotated" not in alert.explanation


def test_a_rotation_in_the_batch_before_still_explains_it(history):
    [alert] = _alerts(history, rotate_minutes=-3)
    assert alert.severity == "low"
    assert "rotated at 11:57 on Tuesday 2026-03-17 by ops/rotator" in alert.explanation


def test_a_few_services_deviating_keep_their_own_alerts(history):
    alerts = _alerts(history, restarting=3)
    assert sorted(a.identity for a in alerts) == [f"fleet/svc-{n:02d}" for n in range(3)]
    assert all(a.identities == [] for a in alerts)


def test_services_deviating_at_different_hours_are_not_merged(history):
    alerts = _alerts(history, restarting=6, hours_apart=1)
    assert sorted(a.identity for a in alerts) == [f"fleet/svc-{n:02d}" for n in range(6)]
    assert FLEET not in {a.identity for a in alerts}


def test_disabled_every_service_has_its_own_alert(history):
    cfg = CFG.model_copy(update={"fleet": CFG.fleet.model_copy(update={"enabled": False})})
    assert len(_alerts(history, cfg)) == 20


def test_peeked_as_a_stream_it_raises_what_a_replay_does(history):
    """A batch seen in part cannot tell one service deviating from the first of twenty:
    the stream raises the fleet finding alone, as the replay does."""
    replayed = _alerts(history)
    streamed = _alerts(history, peek=10)
    assert [a.model_dump(mode="json") for a in streamed] == [
        a.model_dump(mode="json") for a in replayed
    ]
    between = _alerts(history, peek=5, whole_every=4)  # most peeks judge only what is new
    assert [a.model_dump(mode="json") for a in between] == [
        a.model_dump(mode="json") for a in replayed
    ]
    few = _alerts(history, restarting=3, peek=10)
    assert [a.model_dump(mode="json") for a in few] == [
        a.model_dump(mode="json") for a in _alerts(history, restarting=3)
    ]


def test_a_rotation_of_other_secrets_explains_nothing(history):
    sc = scenario_gen.mass_rotation_scenario()
    cut, rotator = sc["train_until"], sc["rotator"]
    rows = [
        (*r[:6], r[6].replace("/db", "/api-key"), *r[7:]) if r[4] == rotator and r[1] >= cut else r
        for r in sc["rows"]
    ]
    alerts = judge(events(rows), history[1], cut, 24, CFG)
    # The rotator writing twenty secrets it never touched is its own concern.
    assert {a.identity for a in alerts} <= {FLEET, rotator}
    [alert] = [a for a in alerts if a.identity == FLEET]
    assert alert.severity == CFG.fleet.severity
    assert "rotated" not in alert.explanation
