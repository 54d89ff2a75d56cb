"""The fleet harness itself: a tiny fleet scenario (9 days, 5% machine traffic) parses on
all three backends into exactly its labelled events, the Berlin calendar crosses summer
time where the default window says, and the scoring counts what its docstring defines on
hand-made alerts. Whether the detectors meet the goals is the harness's output, not a test.
"""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_fleet as ev  # noqa: E402
import fleet_gen as fg  # noqa: E402

from pipeline.detection.replay import load_events  # noqa: E402

SEED, DAYS, SCALE = 5, 9, 0.05
KINDS = {
    "stolen_token_night",
    "cross_team",
    "enumeration",
    "rate_spike",
    "denied_probing",
    "low_and_slow",
    "dormant",
    "root_token",
    "control_plane",
    "shared_source",
    "cold_enumeration",
    "sustained_rate",
    "sustained_denied",
    "password_guessing",
}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("fleet")
    return folder, fg.generate(folder, SEED, DAYS, SCALE)


@pytest.fixture(scope="module")
def parsed(scenario: tuple[Path, dict]) -> tuple[pd.DataFrame, object, list]:
    folder, labels = scenario
    return load_events([str(folder / p) for p in labels["inputs"]])


# --------------------------------------------------------------------------- scenario


def test_same_seed_writes_the_same_bytes(scenario: tuple[Path, dict], tmp_path: Path) -> None:
    folder, labels = scenario
    assert fg.generate(tmp_path, SEED, DAYS, SCALE) == labels
    for name in ("vault/audit.log", "k8s/audit.jsonl", "aws/2026-02-03.json"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes()


def test_every_record_parses_into_one_event_without_dead_letters(
    scenario: tuple[Path, dict], parsed: tuple
) -> None:
    _, labels = scenario
    frame, summary, dead = parsed
    assert dead == []
    assert summary.dead_records == 0
    assert len(frame) == sum(labels["counts"].values())
    assert set(frame["source"]) == {"vault", "aws", "k8s"}
    assert frame["identity"].nunique() >= 100


def test_every_kind_is_labelled_by_existing_events(
    scenario: tuple[Path, dict], parsed: tuple
) -> None:
    _, labels = scenario
    frame = parsed[0]
    by_id = frame.set_index(frame["event_id"].astype(str))
    assert {a["kind"] for a in labels["attacks"]} == KINDS
    for attack in labels["attacks"]:
        assert attack["event_ids"], attack["id"]
        assert set(attack["event_ids"]) <= set(by_id.index), attack["id"]
        named = set(by_id.loc[attack["event_ids"], "identity"])
        assert attack["identity"] in named, (attack["id"], named)
    shared = next(a for a in labels["attacks"] if a["kind"] == "shared_source")
    rows = by_id.loc[shared["event_ids"]]
    assert rows["source"].nunique() == 3 and rows["identity"].nunique() == 3
    assert set(rows["source_ip"]) == {fg.SHARED_OUTSIDE}


def test_sustained_attacks_blend_in_but_for_their_rate(
    scenario: tuple[Path, dict], parsed: tuple
) -> None:
    """A rate or denial run held for hours comes from the identity's own pods and client,
    so only the rate (or the denials) can tell it apart."""
    _, labels = scenario
    frame = parsed[0]
    for kind in ("sustained_rate", "sustained_denied"):
        attack = next(a for a in labels["attacks"] if a["kind"] == kind)
        mine = frame["event_id"].astype(str).isin(attack["event_ids"])
        usual = frame[~mine & (frame["identity"] == attack["identity"])]
        assert set(frame[mine]["user_agent"]) <= set(usual["user_agent"]), kind
        assert set(frame[mine]["source_ip"]) <= set(usual["source_ip"]), kind


def test_fleet_changes_are_labelled_by_their_events(
    scenario: tuple[Path, dict], parsed: tuple
) -> None:
    _, labels = scenario
    frame = parsed[0]
    ids = set(frame["event_id"].astype(str))
    fleet = {c["kind"]: c for c in labels["changes"] if "event_ids" in c}
    assert {"mass_rotation", "renamed_service", "new_secret"} <= set(fleet)
    for change in fleet.values():
        assert set(change["event_ids"]) <= ids, change["kind"]
    rotation = frame[frame["event_id"].astype(str).isin(fleet["mass_rotation"]["event_ids"])]
    assert (rotation["action"] == "write").sum() >= len(fg.WORKLOADS)  # the operator's updates
    assert rotation[rotation["action"] == "read"]["identity"].nunique() >= 40  # re-reads
    renamed = frame[frame["identity"] == fg.RENAMED_FROM]["ts"].max()
    assert renamed < frame[frame["identity"] == fg.RENAMED_TO]["ts"].min()


def test_default_window_crosses_summer_time_in_detection() -> None:
    cal = fg.Calendar(fg.DEFAULT_DAYS, 1.0)
    switch = fg.dst_switch(cal)
    assert switch is not None
    assert datetime.fromtimestamp(switch / 1e6, UTC) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert cal.t(cal.train_days) < switch < cal.t(cal.days)
    day = (switch - cal.start_us) // fg.DAY
    before = datetime.fromtimestamp(fg._local(cal, day - 1, 9.0) / 1e6, UTC)
    after = datetime.fromtimestamp(fg._local(cal, day + 1, 9.0) / 1e6, UTC)
    assert (before.hour, after.hour) == (8, 7)
    assert fg.dst_switch(fg.Calendar(DAYS, 1.0)) is None


# --------------------------------------------------------------------------- scoring


def _labels() -> dict:
    return {
        "detect_days": 10,
        "attacks": [
            {"id": "X1", "kind": "enumeration", "start": "2026-03-01T10:00:00Z",
             "event_ids": ["a1", "a2", "a3"]},
            {"id": "X2", "kind": "control_plane", "start": "2026-03-02T10:00:00Z",
             "event_ids": ["b1"]},
        ],
        "changes": [
            {"id": "C1", "kind": "mass_rotation", "identity": "*", "identities": ["*"],
             "start": "2026-03-03T10:00:00Z", "end": "2026-03-03T12:00:00Z",
             "event_ids": ["r1", "r2"]},
            {"kind": "oncall_night", "identity": "dave", "start": "2026-03-04T01:00:00Z",
             "end": "2026-03-04T04:00:00Z"},
            {"kind": "holiday_lull", "identity": "*", "start": "2026-03-01T00:00:00Z",
             "end": "2026-03-09T00:00:00Z"},
        ],
    }  # fmt: skip


def _alert(aid: str, evidence: list[str], ts: str, end: str, identity: str = "svc") -> dict:
    return {
        "id": aid,
        "detectors": ["x"],
        "identity": identity,
        "timestamp": ts,
        "window_end": end,
        "evidence": evidence,
        "findings": [{"window_end": end}, {"window_end": "2026-03-09T00:00:00Z"}],
    }


def test_score_counts_catches_precision_and_delay() -> None:
    alerts = [
        # two of three evidence ids are the attack's; raised 20 minutes after its start
        _alert("1", ["a1", "a2", "n1"], "2026-03-01T10:00:00Z", "2026-03-01T10:20:00Z"),
        # a second alert on the same attack, later: delay stays the first one's
        _alert("2", ["a3"], "2026-03-01T11:00:00Z", "2026-03-01T12:00:00Z"),
    ]
    result = ev.score(alerts, _labels())
    assert result.caught == {"X1": ["1", "2"]}
    kind = result.kinds["enumeration"]
    assert (kind.attacks, kind.caught, kind.alerts) == (1, 1, 2)
    assert kind.precision == pytest.approx([2 / 3, 1.0])
    assert kind.delays == [20 * 60.0]
    assert result.kinds["control_plane"].caught == 0
    assert result.alerts_per_caught == 2.0
    assert result.false_alerts == [] and result.on_change == {}


def test_delay_is_never_negative_and_uses_the_alert_end_without_findings() -> None:
    alert = _alert("1", ["b1"], "2026-03-02T09:00:00Z", "2026-03-02T09:30:00Z")
    del alert["findings"]
    result = ev.score([alert], _labels())
    assert result.kinds["control_plane"].delays == [0.0]
    alert["window_end"] = "2026-03-02T11:00:00Z"
    assert ev.score([alert], _labels()).kinds["control_plane"].delays == [3600.0]


def test_benign_change_and_false_alerts_are_told_apart() -> None:
    alerts = [
        _alert("c", ["r1", "x"], "2026-03-03T10:30:00Z", "2026-03-03T11:00:00Z"),
        _alert("d", ["z"], "2026-03-04T02:00:00Z", "2026-03-04T03:00:00Z", "dave"),
        # the holiday is context: an alert inside it is still false
        _alert("f", ["y"], "2026-03-05T02:00:00Z", "2026-03-05T03:00:00Z"),
        # dave outside his on-call night
        _alert("g", ["w"], "2026-03-06T02:00:00Z", "2026-03-06T03:00:00Z", "dave"),
    ]
    result = ev.score(alerts, _labels())
    assert result.on_change == {"C1": ["c"], "oncall_night:dave:2026-03-04T01:00:00Z": ["d"]}
    assert [a["id"] for a in result.false_alerts] == ["f", "g"]
    assert result.false_per_day == pytest.approx(0.2)
    assert result.caught == {}


def test_on_call_is_said_of_the_identity_on_call_that_week() -> None:
    labels = {"oncall": [{"identity": "dave", "start": "2026-03-02T00:00:00Z",
                          "end": "2026-03-09T00:00:00Z"}]}  # fmt: skip
    night = _alert("1", ["z"], "2026-03-04T02:00:00Z", "2026-03-04T03:00:00Z", "dave")
    assert ev.on_call(night, labels)
    assert not ev.on_call({**night, "identity": "erin"}, labels)
    assert not ev.on_call({**night, "timestamp": "2026-03-09T00:00:00Z"}, labels)


def test_an_alert_on_an_attack_is_not_a_change_alert() -> None:
    alert = _alert("1", ["a1", "r1"], "2026-03-01T10:00:00Z", "2026-03-01T10:10:00Z")
    result = ev.score([alert], _labels())
    assert result.caught == {"X1": ["1"]} and result.on_change == {}
    assert result.precision == [0.5]


def test_goals() -> None:
    labels = _labels()
    perfect = [
        _alert("1", ["a1", "a2"], "2026-03-01T10:00:00Z", "2026-03-01T10:10:00Z"),
        _alert("2", ["b1"], "2026-03-02T10:00:00Z", "2026-03-02T10:10:00Z"),
        _alert("3", ["r2"], "2026-03-03T10:30:00Z", "2026-03-03T11:00:00Z"),
    ]
    assert all(g.met for g in ev.goals(ev.score(perfect, labels)))
    noisy = [
        *perfect,
        _alert("4", ["a3"], "2026-03-01T11:00:00Z", "2026-03-01T11:10:00Z"),  # 1.5 per caught
        _alert("5", ["r1"], "2026-03-03T10:40:00Z", "2026-03-03T11:00:00Z"),  # 2 on C1
        _alert("6", ["q"], "2026-03-05T10:40:00Z", "2026-03-05T11:00:00Z"),  # 0.1 false/day
    ]
    met = {g.text: g.met for g in ev.goals(ev.score(noisy, labels))}
    assert met == {
        "every attack kind caught": True,
        "<= 1.5 alerts per caught attack": True,
        "<= 0.1 false alerts per day": True,
        "<= 1 alert per benign change": False,
        "evidence precision >= 0.9": True,
    }
    vague = [_alert("1", ["a1", "n1", "n2"], "2026-03-01T10:00:00Z", "2026-03-01T10:10:00Z")]
    met = {g.text: g.met for g in ev.goals(ev.score(vague, labels))}
    assert not met["every attack kind caught"] and not met["evidence precision >= 0.9"]


def test_cli_scores_an_alerts_file_and_checks_goals(
    scenario: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, labels = scenario
    perfect = tmp_path / "perfect.jsonl"
    perfect.write_bytes(
        b"".join(
            orjson.dumps(_alert(a["id"], a["event_ids"], a["start"], a["end"])) + b"\n"
            for a in labels["attacks"]
        )
    )
    args = ["--scenario", str(folder), "--days", str(DAYS), "--seed", str(SEED)]
    args += ["--scale", str(SCALE), "--check", "--alerts"]
    out = Console(file=io.StringIO(), width=200)
    assert ev.main([*args, str(perfect)], out) == 0
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "MISSED" not in text and "password_guessing" in text
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = Console(file=io.StringIO(), width=200)
    assert ev.main([*args, str(empty)], out) == 1
    assert "MISSED every attack kind caught: 0/14 kinds" in out.file.getvalue()  # type: ignore[attr-defined]
