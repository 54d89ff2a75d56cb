"""The evaluation harness itself: a seeded scenario that parses cleanly into the labelled
events, scoring that counts what it claims to, and ElastAlert rules that fire when they
should and only then. Small scenarios (30 days, 5% traffic) keep the file fast."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import orjson
import pandas as pd
import pytest
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
import elastalert_rules as ea  # noqa: E402
import eval_detectors as ev  # noqa: E402
import scenario_gen as sg  # noqa: E402

from pipeline.detection.replay import load_events  # noqa: E402

SEED, DAYS, SCALE = 3, 30, 0.05
KINDS = {
    "stolen_token_night",
    "cross_team",
    "enumeration",
    "rate_spike",
    "denied_probing",
    "dormant",
    "low_and_slow",
    "root_token",
}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("scenario")
    return folder, sg.generate(folder, SEED, DAYS, SCALE)


@pytest.fixture(scope="module")
def parsed(scenario: tuple[Path, dict]) -> tuple[pd.DataFrame, object, list]:
    folder, _ = scenario
    return load_events([str(folder / "vault"), str(folder / "aws")])


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- scenario


def test_same_seed_writes_the_same_bytes(scenario: tuple[Path, dict], tmp_path: Path) -> None:
    folder, labels = scenario
    again = sg.generate(tmp_path, SEED, DAYS, SCALE)
    assert again == labels
    first, second = _files(folder), _files(tmp_path)
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []


def test_another_seed_writes_other_traffic(scenario: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = scenario
    sg.generate(tmp_path, SEED + 1, DAYS, SCALE)
    assert (tmp_path / "vault" / "audit.log").read_bytes() != (
        folder / "vault" / "audit.log"
    ).read_bytes()


def test_layout_and_labels(scenario: tuple[Path, dict]) -> None:
    folder, labels = scenario
    assert (folder / "vault" / "audit.log").stat().st_size > 0
    days = sorted(p.name for p in (folder / "aws").iterdir())
    assert days[0] == "2026-02-01.json" and len(days) == DAYS
    assert orjson.loads((folder / "labels.json").read_bytes()) == labels
    assert labels["start"] == "2026-02-01T00:00:00Z" and labels["detect_days"] == 10
    assert labels["train_until"] == "2026-02-21T00:00:00Z"
    assert labels["end"] == "2026-03-03T00:00:00Z"
    assert len({i["identity"] for i in labels["identities"]}) >= 30
    assert {c["kind"] for c in labels["changes"]} == {
        "new_service",
        "batch_rescheduled",
        "oncall_night",
        "holiday_lull",
        "holiday_end",
    }
    assert [w["identity"] for w in labels["oncall"][:4]] == [*sg.ONCALL, sg.ONCALL[0]]
    assert labels["oncall"][-1]["end"] == labels["end"]


def test_every_call_parses_into_one_event(scenario: tuple[Path, dict], parsed: tuple) -> None:
    _, labels = scenario
    frame, summary, dead = parsed
    assert dead == [] and summary.dead_records == 0 and summary.skipped_records == 0
    assert frame["event_id"].is_unique
    counts = labels["counts"]
    assert len(frame) == counts["vault_calls"] + counts["aws_records"]
    assert frame["note"].isna().mean() > 0.99  # the parser had to assume next to nothing


def test_identities_are_named_as_the_parser_names_them(
    scenario: tuple[Path, dict], parsed: tuple
) -> None:
    _, labels = scenario
    frame = parsed[0]
    labelled = {i["identity"]: i["identity_kind"] for i in labels["identities"]}
    seen = frame.groupby("identity")["identity_kind"].agg(set).to_dict()
    assert set(seen) <= set(labelled)
    assert {name: kinds for name, kinds in seen.items() if kinds != {labelled[name]}} == {}
    assert {
        "payments/payments-api",
        "legacy-cron",
        "ci-deploy",
        "bob",
        "alice@example.com",
        "root",
        sg.ROLE_BY_NAME["payments-lambda"].arn,
    } <= set(seen)


def test_every_attack_is_its_labelled_events(scenario: tuple[Path, dict], parsed: tuple) -> None:
    _, labels = scenario
    frame = parsed[0].set_index("event_id")
    attacks = labels["attacks"]
    assert {a["kind"] for a in attacks} >= KINDS
    assert {a["source"] for a in attacks} == {"vault", "aws"}
    assert len({a["identity"] for a in attacks}) == len(attacks)
    detect = pd.Timestamp(labels["train_until"])
    for attack in attacks:
        rows = frame.reindex(attack["event_ids"])
        assert rows["identity"].notna().all(), f"{attack['id']}: ids the parser does not give"
        assert set(rows["identity"]) == {attack["identity"]}, attack["id"]
        assert set(rows["source"]) == {attack["source"]}, attack["id"]
        assert rows["ts"].min() == pd.Timestamp(attack["start"]) >= detect, attack["id"]
        assert rows["ts"].max() == pd.Timestamp(attack["end"]), attack["id"]


def test_traffic_keeps_its_rhythms(scenario: tuple[Path, dict], parsed: tuple) -> None:
    """People work weekdays and are up at night only when on call (or attacked); services
    are busier by day; the dormant job is silent after its first days."""
    _, labels = scenario
    frame = parsed[0]
    attack_ids = {e for a in labels["attacks"] for e in a["event_ids"]}
    normal = frame[~frame["event_id"].isin(attack_ids)]
    people = normal[normal["identity"].isin([h.identity for h in sg.HUMANS])]
    hour, weekday = people["ts"].dt.hour, people["ts"].dt.day_of_week
    night = people[(hour < 6) | (weekday >= 5)]
    assert set(night["identity"]) <= set(sg.ONCALL) and len(night) > 0
    weeks = pd.DataFrame(labels["oncall"])
    for ts, who in zip(night["ts"], night["identity"], strict=True):
        on = weeks[
            (weeks["identity"] == who)
            & (weeks["start"].map(pd.Timestamp) <= ts)
            & (ts < weeks["end"].map(pd.Timestamp))
        ]
        assert len(on) == 1, f"{who} up at {ts} while not on call"
    svc = normal[normal["identity"] == "orders/orders-api"]["ts"].dt.hour
    assert svc.between(9, 16).sum() > 2 * svc.between(0, 7).sum()
    legacy = normal[normal["identity"] == "legacy-cron"]["ts"]
    assert legacy.max() < pd.Timestamp(labels["start"]) + pd.Timedelta(days=7)


# --------------------------------------------------------------------------- scoring


LABELS = {
    "detect_days": 10,
    "attacks": [
        {
            "id": "A",
            "kind": "enumeration",
            "source": "vault",
            "identity": "svc",
            "event_ids": ["e1", "e2"],
            "start": "",
            "end": "",
            "description": "",
        },
        {
            "id": "B",
            "kind": "root_token",
            "source": "vault",
            "identity": "root",
            "event_ids": ["e3"],
            "start": "",
            "end": "",
            "description": "",
        },
        {
            "id": "C",
            "kind": "dormant",
            "source": "vault",
            "identity": "old",
            "event_ids": ["e9"],
            "start": "",
            "end": "",
            "description": "",
        },
    ],
    "changes": [
        {
            "kind": "new_service",
            "identity": "new",
            "start": "2026-05-03T00:00:00Z",
            "end": "2026-06-01T00:00:00Z",
        }
    ],
    "oncall": [
        {"identity": "other", "start": "2026-05-03T00:00:00Z", "end": "2026-05-10T00:00:00Z"}
    ],
}


def _alert(
    aid: str,
    identity: str,
    evidence: list[str],
    detector: object = "d",
    ts: str = "2026-05-05T10:00:00Z",
) -> dict:
    return {
        "id": aid,
        "detector": detector,
        "identity": identity,
        "severity": "high",
        "score": 1.0,
        "timestamp": ts,
        "explanation": aid,
        "evidence": evidence,
    }


def test_score_counts_catches_and_false_alerts() -> None:
    alerts = [
        _alert("a1", "svc", ["e1"]),
        _alert("a2", "svc", ["e2", "e3"], ["enumeration", "rate_spike"]),
        _alert("a3", "new", ["x1"]),  # false, during the new service's change
        _alert("a4", "new", ["x2"], ts="2026-05-01T00:00:00Z"),  # false, before it
        _alert("a5", "other", []),  # false
    ]
    result = ev.score(alerts, LABELS, "t")
    assert result.caught == {"A": ["a1", "a2"], "B": ["a2"]}
    assert (result.alerts, result.matching, result.caught_count) == (5, 2, 2)
    assert result.alerts_per_caught == 1.0
    assert [a["id"] for a in result.false_alerts] == ["a3", "a4", "a5"]
    assert result.false_per_day == pytest.approx(0.3)
    assert [[c["kind"] for c in a["touches"]] for a in result.false_alerts] == [
        ["new_service"],
        [],
        ["on_call_week"],
    ]
    assert result.by_kind() == {"enumeration": (1, 1), "root_token": (1, 1), "dormant": (0, 1)}
    assert [a["id"] for a in result.missed()] == ["C"]
    assert result.false_by("identity") == {"new": 2, "other": 1}
    assert ev.detector_name(alerts[1]) == "enumeration+rate_spike"


def test_goals_need_all_four() -> None:
    perfect = ev.score(
        [_alert(a, "x", [a.lower()]) for a in ("E1", "E3", "E9")],
        {
            **LABELS,
            "attacks": [
                {**a, "event_ids": [e]}
                for a, e in zip(LABELS["attacks"], ("e1", "e3", "e9"), strict=True)
            ],
        },
        "ours",
    )
    baseline = ev.score([_alert("b", "svc", ["e1"]), _alert("f", "svc", [])], LABELS, "base")
    assert [g.met for g in ev.goals(perfect, baseline)] == [True, True, True, True]
    noisy = ev.score([_alert("a", "svc", ["e1"])] * 3 + [_alert("f", "q", [])] * 2, LABELS, "n")
    assert [g.met for g in ev.goals(noisy, baseline)] == [False, False, False, False]


# --------------------------------------------------------------------------- ElastAlert


TRAIN_UNTIL = "2026-03-01T00:00:00Z"


def _frame(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """(time, identity, secret, action, outcome) rows as a normalized events frame."""
    frame = pd.DataFrame(rows, columns=["ts", "identity", "secret", "action", "outcome"])
    frame.insert(0, "event_id", [f"e{i}" for i in range(len(frame))])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame.sort_values(["ts", "event_id"], ignore_index=True)


def _at(minutes: float, day: str = "2026-03-02") -> str:
    stamp = pd.Timestamp(f"{day}T08:00:00Z") + pd.Timedelta(seconds=round(minutes * 60, 3))
    return stamp.isoformat()


def _steady(
    identity: str, per_hour: int, hours: int, day: str = "2026-03-02"
) -> list[tuple[str, str, str, str, str]]:
    return [
        (_at(60 * h + (m + 0.5) * 60 / per_hour, day), identity, "secret/a", "read", "success")
        for h in range(hours)
        for m in range(per_hour)
    ]


def _calm() -> list[tuple[str, str, str, str, str]]:
    rows = _steady("svc", 12, 8, "2026-02-20") + _steady("svc", 12, 8)
    rows += [(_at(m * 7), "svc", "secret/a", "read", "denied") for m in range(4)]  # 4 < 5
    rows += [(_at(300 + m * 9), "svc", "secret/a", "read", "denied") for m in range(6)]
    return rows


def test_rules_stay_quiet_on_calm_traffic() -> None:
    assert ea.run_rules(_frame(_calm()), TRAIN_UNTIL) == []


def test_frequency_fires_once_per_burst_and_realerts_later() -> None:
    rows = _calm() + [
        (_at(100 + s / 60), "svc", f"secret/p{s}", "read", "denied") for s in range(0, 120, 20)
    ]
    rows += [(_at(110 + s / 60), "svc", "secret/q", "read", "denied") for s in range(6)]
    rows += [(_at(200 + s / 60), "svc", "secret/q", "read", "denied") for s in range(5)]
    rows += [(_at(-3 * 1440 + s / 60), "svc", "secret/q", "read", "denied") for s in range(9)]
    alerts = [
        a
        for a in ea.run_rules(_frame(rows), TRAIN_UNTIL)
        if a["detector"] == "secrets-denied-burst"
    ]
    assert [a["timestamp"][11:16] for a in alerts] == ["09:41", "11:20"]  # not 09:50: realert
    assert len(alerts[0]["evidence"]) == 5 and all(a["identity"] == "svc" for a in alerts)


def test_new_term_fires_on_new_identities_and_secrets_only() -> None:
    rows = _calm() + [
        ("2026-01-10T10:00:00Z", "svc", "secret/old", "read", "success"),  # beyond 30 days
        (_at(30), "svc", "secret/old", "read", "success"),
        (_at(31), "svc", "secret/a", "read", "success"),
        (_at(40), "newbie", "secret/a", "read", "success"),
        (_at(40.5), "newbie", "secret/b", "read", "success"),  # silenced: realert 1 minute
        (_at(41), "newbie", "secret/b", "read", "success"),
        (_at(50), "svc", "secret/b", "auth", "success"),  # filtered out: not read/list
    ]
    alerts = [
        a for a in ea.run_rules(_frame(rows), TRAIN_UNTIL) if a["detector"] == "secrets-new-term"
    ]
    assert [(a["identity"], a["explanation"]) for a in alerts] == [
        ("svc", "New term {'secret': 'secret/old'}"),
        ("newbie", "New term {'identity': 'newbie'}"),
    ]
    pair = ea.run_rules(_frame(rows), TRAIN_UNTIL, ea.PAIR_RULES)
    assert [a["explanation"] for a in pair] == [
        "New term {'identity': 'svc', 'secret': 'secret/old'}",
        "New term {'identity': 'newbie', 'secret': 'secret/a'}",
    ]  # newbie + secret/b: silenced at 08:40:30, already known at 08:41


def test_spike_fires_on_a_burst_above_the_previous_hour() -> None:
    rows = _calm() + [
        (_at(8 * 60 + m), "svc", "secret/a", "read", "success") for m in range(0, 60)
    ]  # 60 reads in the hour after 12 an hour
    rows += [(_at(m * 5), "quiet", "secret/z", "read", "success") for m in range(40)]
    rows += [(_at(m * 5, "2026-02-20"), "quiet", "secret/z", "read", "success") for m in range(40)]
    alerts = [
        a for a in ea.run_rules(_frame(rows), TRAIN_UNTIL) if a["detector"] == "secrets-read-spike"
    ]
    assert [(a["identity"], a["timestamp"][11:16]) for a in alerts] == [("svc", "16:29")]
    assert len(alerts[0]["evidence"]) >= 36


def test_rules_reject_what_they_do_not_understand() -> None:
    with pytest.raises(ValueError, match="not supported"):
        ea.apply_filter(_frame(_calm()), [{"query_string": {"query": "*"}}])
    with pytest.raises(ValueError, match="not one of"):
        ea.run_rules(_frame(_calm()), TRAIN_UNTIL, [{"name": "x", "type": "flatline"}])


# --------------------------------------------------------------------------- the CLI


def _run(argv: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    code = ev.main(argv, Console(file=buffer, width=200))
    return code, buffer.getvalue()


def test_cli_scores_an_alerts_file_and_checks_goals(
    scenario: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, labels = scenario
    args = [
        "--scenario",
        str(folder),
        "--seed",
        str(SEED),
        "--days",
        str(DAYS),
        "--scale",
        str(SCALE),
        "--check",
        "--alerts",
    ]
    one = tmp_path / "one.jsonl"
    one.write_bytes(
        orjson.dumps(_alert("x", "bob", labels["attacks"][0]["event_ids"][:1]))
        + b"\n"
        + orjson.dumps(_alert("f", "svc", ["nope"]))
        + b"\n"
    )
    code, text = _run([*args, str(one)])
    assert code == 1
    assert "reusing the scenario" in text and "MISSED every attack kind caught" in text
    assert "A2 cross_team on search/query-api" in text  # missed attacks are listed
    every = tmp_path / "every.jsonl"
    every.write_bytes(
        b"".join(
            orjson.dumps(_alert(a["id"], a["identity"], a["event_ids"])) + b"\n"
            for a in labels["attacks"]
        )
    )
    code, text = _run([*args, str(every)])
    assert code == 0, text
    assert "MISSED" not in text


def test_cli_refuses_to_mix_scenarios(scenario: tuple[Path, dict]) -> None:
    folder, _ = scenario
    with pytest.raises(SystemExit, match="holds another scenario"):
        ev.prepare_scenario(folder, SEED + 1, DAYS, SCALE, Console(file=io.StringIO()))
