"""Identities that share an outside network are one incident naming all of them."""

from __future__ import annotations

import orjson
import pytest
from cross import events, judge, scenario_gen, trained

from detectors.alert import Alert, Finding, Incident
from detectors.incidents import FindingState, IncidentDoc, from_alert
from detectors.settings import DetectorsConfig

CFG = DetectorsConfig()
NET = "203.0.113.0/24"


@pytest.fixture(scope="module")
def world():
    sc = scenario_gen.shared_source_scenario()
    ev = events(sc["rows"])
    return sc, ev, trained(ev, sc["train_until"], CFG)


@pytest.fixture(scope="module")
def alerts(world) -> list[Alert]:
    sc, ev, base = world
    return judge(ev, base, sc["train_until"], 24, CFG)


def _naming(alerts: list[Alert], identity: str) -> list[Alert]:
    return [a for a in alerts if identity == a.identity or identity in a.identities]


def test_four_identities_across_vault_and_aws_on_one_network_are_one_alert(world, alerts):
    sc = world[0]
    shared = [a for a in alerts if set(a.identities) & set(sc["shared"])]
    assert len(shared) == 1
    [alert] = shared
    assert alert.identity == "vault/orders-api"  # the first of them
    assert alert.identities == [sc["shared"][0], *sorted(sc["shared"][1:])]  # first, then by name
    assert "shared_source" in alert.detectors
    assert NET in alert.explanation
    assert all(name in alert.explanation for name in sc["shared"])
    for name in sc["shared"]:
        assert _naming(alerts, name) == [alert]
    assert len(alert.evidence) == 4
    assert alert.model_dump(mode="json")["identities"] == alert.identities


def test_a_single_identity_from_an_outside_network_stays_its_own_incident(world, alerts):
    lone = world[0]["lone"]
    [alert] = _naming(alerts, lone)
    assert (alert.identity, alert.identities, alert.detectors) == (lone, [], ["new_source"])
    assert "identities" not in alert.model_dump(mode="json")


def test_identities_on_one_network_hours_apart_are_not_merged(world, alerts):
    for name in world[0]["apart"]:
        [alert] = _naming(alerts, name)
        assert (alert.identity, alert.identities, alert.detectors) == (name, [], ["new_source"])


def test_disabled_each_identity_keeps_its_own_alert(world):
    sc, ev, base = world
    cfg = CFG.model_copy(
        update={"shared_source": CFG.shared_source.model_copy(update={"enabled": False})}
    )
    alerts = judge(ev, base, sc["train_until"], 24, cfg)
    assert sorted(a.identity for a in alerts if a.identity in sc["shared"]) == sorted(sc["shared"])


def test_peeked_as_a_stream_or_restarted_the_alerts_are_the_same(world, alerts):
    sc, ev, base = world
    cut = sc["train_until"]
    streamed = judge(ev, base, cut, 24, CFG, peek_minutes=10)
    # Restarted between the first two of the four and the last two.
    restarted = judge(ev, base, cut, 24, CFG, restart_at=10)
    dumps = [a.model_dump(mode="json") for a in alerts]
    assert [a.model_dump(mode="json") for a in streamed] == dumps
    assert [a.model_dump(mode="json") for a in restarted] == dumps


def test_a_stored_alert_naming_several_identities_is_rebuilt_with_them(alerts):
    [alert] = [a for a in alerts if a.identities]
    again = Alert.model_validate(orjson.loads(orjson.dumps(alert.model_dump(mode="json"))))
    assert again == alert
    rebuilt = from_alert(again)
    assert rebuilt.id == alert.id
    assert rebuilt.alert().identities == alert.identities


def test_an_alert_stored_before_identities_existed_still_loads(alerts):
    doc = alerts[0].model_dump(mode="json")
    doc.pop("identities", None)
    assert Alert.model_validate(doc).identities == []


def test_kept_findings_write_the_new_fields_only_when_set():
    plain = Finding("root_token", "root", 0, 10, 5, 1.0, 1.0, "critical", "r.", ("e",))
    assert set(FindingState.of(plain).model_dump()) == {
        "detector",
        "identity",
        "start_us",
        "end_us",
        "at_us",
        "score",
        "threshold",
        "severity",
        "explanation",
        "evidence",
    }
    shared = Finding(
        "shared_source", "a", 0, 10, 5, 2.0, 2.0, "high", "s.", ("e",), ("a", "b"), NET
    )
    incident = Incident("a")
    incident.add(shared)
    doc = IncidentDoc.model_validate_json(IncidentDoc.of(incident).model_dump_json())
    assert doc.incident().findings == [shared]
    assert incident.alert().identities == ["a", "b"]
