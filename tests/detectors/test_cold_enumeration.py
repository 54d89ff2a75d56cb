"""Cold enumeration: a new identity that reads many secrets at once, with no history to
compare with. Judged on the small world, on Stratus-shaped CloudTrail through `secretwatch
replay` alone, and on the real BatchGetSecretValue detonation in tests/fixtures."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from judge import judge
from typer.testing import CliRunner
from world import after, row

from pipeline.cli import app

REPO = Path(__file__).resolve().parents[2]
STRATUS = REPO / "tests" / "fixtures" / "aws_cloudtrail" / "datadog__stratus-red-team"
THIEF = "arn:aws:iam::111122223333:user/intruder"


def reads(ident: str, n: int, gap_s: float, start: datetime | None = None, folder: str = "x"):
    at = start or after(10)
    return [
        row(ident, at + timedelta(seconds=gap_s * i), f"secret/{folder}/k{i}", ip="203.0.113.9")
        for i in range(n)
    ]


def listing(ident: str, at: datetime) -> list:
    return [row(ident, at, "secret/x/", "list", ip="203.0.113.9")]


def test_twenty_distinct_secrets_in_a_minute_from_a_new_identity(trained):
    [f] = judge("cold_enumeration", trained, reads("intruder", 20, 2.5))
    assert f.identity == "intruder" and f.score == pytest.approx(1.0)
    assert "never seen before" in f.explanation
    assert "20 distinct secrets it had not read before within 48 seconds" in f.explanation
    assert len(f.evidence) == 20


def test_nineteen_in_a_minute_or_twenty_spread_over_more_are_not(trained):
    assert judge("cold_enumeration", trained, reads("intruder", 19, 2.5)) == []
    # 20 reads 3.5 s apart: at most 18 fall in any 60 s.
    assert judge("cold_enumeration", trained, reads("intruder", 20, 3.5)) == []
    # The window is configurable.
    assert judge("cold_enumeration", trained, reads("intruder", 20, 3.5), window_seconds=70)


def test_ten_after_a_listing_are_enough_nine_are_not(trained):
    start = after(10)
    listed = listing("intruder", start - timedelta(minutes=4))
    [f] = judge("cold_enumeration", trained, listed + reads("intruder", 10, 1, start))
    assert "listed secrets (1 call from" in f.explanation
    assert len(f.evidence) == 11  # the listing and the ten reads
    assert judge("cold_enumeration", trained, listed + reads("intruder", 9, 1, start)) == []
    # A listing longer ago than the lookback does not lower the bar.
    old = listing("intruder", start - timedelta(minutes=6))
    assert judge("cold_enumeration", trained, old + reads("intruder", 10, 1, start)) == []
    rows = old + reads("intruder", 10, 1, start)
    assert judge("cold_enumeration", trained, rows, list_lookback_minutes=7)
    # A listing after the reads began did not lead to them.
    late = listing("intruder", start + timedelta(seconds=5))
    assert judge("cold_enumeration", trained, late + reads("intruder", 10, 1, start)) == []


def test_evidence_is_the_sweep_not_the_identitys_other_events_nor_others(trained):
    start = after(10)
    before = [row("intruder", start - timedelta(minutes=20), "secret/y/a", ip="203.0.113.9")]
    later = [row("intruder", start + timedelta(minutes=30), "secret/y/b", ip="203.0.113.9")]
    other = reads("other-new", 5, 1, start, folder="z")
    sweep = reads("intruder", 22, 1, start)
    [f] = judge("cold_enumeration", trained, before + sweep + later + other)
    assert set(f.evidence) == {r.event_id for r in sweep}


def test_known_identities_are_left_to_the_enumeration_detector(trained):
    rows = [
        row("alice", after(10) + timedelta(seconds=i), f"secret/orders/k{i}", kind="human")
        for i in range(30)
    ]
    assert judge("cold_enumeration", trained, rows) == []


def test_repeats_of_one_secret_and_failed_reads_do_not_count(trained):
    start = after(10)
    same = [row("intruder", start + timedelta(seconds=i), "secret/x/one") for i in range(40)]
    denied = [
        row("intruder", start + timedelta(seconds=i), f"secret/x/d{i}", outcome="denied")
        for i in range(40)
    ]
    assert judge("cold_enumeration", trained, same + denied) == []


def test_a_young_identity_rereading_what_it_read_before_is_not_a_sweep(trained):
    day1 = after(-24 * 3)  # three days before: it is young, not warm
    config = reads("new-svc", 25, 30, day1, folder="new-svc")  # learned: 25 secrets, slowly
    trained.update(_prepared(config))
    again = reads("new-svc", 25, 1, after(10), folder="new-svc")
    assert judge("cold_enumeration", trained, again) == []
    fresh = reads("new-svc", 25, 1, after(10), folder="elsewhere")
    [f] = judge("cold_enumeration", trained, fresh)
    assert "little history (1 active day" in f.explanation


def test_bulk_read_by_filter_from_a_new_identity(trained):
    at = after(10)
    bulk = [row("intruder", at, "arn:aws:secretsmanager:r:1:secret:*", ip="203.0.113.9")]
    [f] = judge("cold_enumeration", trained, bulk)
    assert "in bulk by filter or path" in f.explanation and "unknown" in f.explanation
    assert judge("cold_enumeration", trained, bulk, bulk_reads=False) == []


def test_disabled_in_config_raises_nothing(trained):
    from detectors.settings import DetectorsConfig

    cfg = DetectorsConfig.model_validate({"cold_enumeration": {"enabled": False}})
    assert not cfg.cold_enumeration.enabled
    assert cfg.model_validate({}).cold_enumeration.min_distinct == 20


# ------------------------------------------------------------- replayed alone, real-shaped


def _prepared(rows: list):
    from world import frame

    return frame(rows)


def _cloudtrail(event: str, at: datetime, params: object, n: int) -> dict:
    """A CloudTrail record shaped like Stratus Red Team's published detonation logs."""
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE0000000000",
            "arn": THIEF,
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE000000000",
            "userName": "intruder",
        },
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": event,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.77",
        "userAgent": "stratus-red-team_00000000-0000-0000-0000-000000000000",
        "requestParameters": params,
        "responseElements": None,
        "requestID": f"00000000-0000-0000-0000-{n:012d}",
        "eventID": f"10000000-0000-0000-0000-{n:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
    }


def _replay(tmp_path: Path, source: Path) -> list[dict]:
    alerts = tmp_path / "alerts.jsonl"
    args = ["replay", "--input", str(source), "--train-until", "2020-01-01", "--alerts"]
    result = CliRunner().invoke(app, [*args, str(alerts)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in alerts.read_bytes().splitlines()]


@pytest.mark.parametrize(
    "list_params",
    [None, {"maxResults": 100}, {"filters": [{"key": "tag-key", "values": ["StratusRedTeam"]}]}],
)
def test_stratus_retrieve_secrets_replayed_alone_raises_one_alert(tmp_path, list_params):
    at = datetime.fromisoformat("2024-07-31T12:29:10+00:00")
    records = [_cloudtrail("ListSecrets", at, list_params, 0)]
    arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:stratus-red-team-retrieve-secret"
    for i in range(20):
        when = at + timedelta(seconds=1 + i // 5)  # 20 reads in 4 seconds
        records.append(
            _cloudtrail("GetSecretValue", when, {"secretId": f"{arn}-{i}-AbCdEf"}, i + 1)
        )
    # Someone else's routine read in the same minute is not evidence.
    other = _cloudtrail("GetSecretValue", at, {"secretId": f"{arn}-0-AbCdEf"}, 99)
    other["userIdentity"] = {**other["userIdentity"], "arn": THIEF.replace("intruder", "ops")}
    records.append(other)
    source = tmp_path / "detonation.json"
    source.write_bytes(orjson.dumps({"Records": records}))
    [alert] = _replay(tmp_path, source)
    assert alert["identity"] == THIEF and alert["detectors"] == ["cold_enumeration"]
    assert "listed secrets (1 call" in alert["explanation"]
    assert "20 distinct secrets it had not read before within 3 seconds" in alert["explanation"]
    assert "stratus-red-team-retrieve-secret-0" in alert["explanation"]
    assert sorted(alert["evidence"]) == sorted(r["eventID"] for r in records[:21])


def test_real_batch_detonation_replayed_alone_raises_one_alert(tmp_path):
    source = STRATUS / "aws.credential-access.secretsmanager-batch-retrieve-secrets.json"
    [alert] = _replay(tmp_path, source)
    assert alert["identity"] == "arn:aws:iam::165109126369:user/christophe"
    assert alert["detectors"] == ["cold_enumeration"]
    assert "in bulk by filter" in alert["explanation"]
    records = orjson.loads(source.read_bytes())
    assert sorted(alert["evidence"]) == sorted(r["eventID"] for r in records)


def test_real_ssm_detonation_replayed_alone_is_a_cold_sweep(tmp_path):
    source = STRATUS / "aws.credential-access.ssm-retrieve-securestring-parameters.json"
    [alert] = _replay(tmp_path, source)
    assert "cold_enumeration" in alert["detectors"]
    [sweep] = [f for f in alert["findings"] if f["detector"] == "cold_enumeration"]
    assert "listed secrets" in sweep["explanation"]
    assert "42 distinct secrets it had not read before within 2 seconds" in sweep["explanation"]
    records = orjson.loads(source.read_bytes())
    assert {e.split("#")[0] for e in alert["evidence"]} <= {r["eventID"] for r in records}


def test_real_trail_hour_names_the_detonating_user_only(tmp_path):
    folder = REPO / "tests" / "fixtures" / "aws_cloudtrail" / "invictus-ir__aws_dataset"
    alerts = _replay(tmp_path, folder)
    sweeps = [a for a in alerts if "cold_enumeration" in a["detectors"]]
    assert [a["identity"] for a in sweeps] == ["arn:aws:iam::123837392027:user/bert-jan"]
    mine = set()
    for path in folder.glob("*.json"):
        for r in orjson.loads(path.read_bytes())["Records"]:
            if r["userIdentity"].get("arn", "").endswith("user/bert-jan"):
                mine.add(r["eventID"])
    assert sweeps[0]["evidence"] and {e.split("#")[0] for e in sweeps[0]["evidence"]} <= mine
