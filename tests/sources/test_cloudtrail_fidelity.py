"""CloudTrail fidelity items seen on the real Stratus Red Team hour (issue 17 item 5): KMS
calls Secrets Manager and SSM make for a caller, people behind SSO and assumed-role
sessions, service names where an address goes, and per-record accounting of S3 objects
through the real `secretwatch ingest` process."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pandas as pd
import pytest
from helpers import feed_file

from detectors.events import prepare
from pipeline.ingest import Ingestor
from pipeline.record import FIELDS, EventRow
from pipeline.sources import cloudtrail
from pipeline.sources.base import FeedResult
from pipeline.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
INVICTUS = FIXTURES / "aws_cloudtrail" / "invictus-ir__aws_dataset"
PANTHER = FIXTURES / "aws_cloudtrail" / "panther-labs__panther-analysis"
GENERATED = FIXTURES / "aws_cloudtrail" / "secretwatch__generated"
BERT = "arn:aws:iam::123837392027:user/bert-jan"


def feed(*paths: Path) -> FeedResult:
    """Every file through its own parser, as ingest does (helpers.feed_file checks rows)."""
    out = FeedResult()
    for path in paths:
        out.extend(feed_file(cloudtrail.SPEC, path))
    return out


@pytest.fixture(scope="module")
def invictus() -> FeedResult:
    return feed(*sorted(INVICTUS.glob("*.json")))


def _derived(row: EventRow) -> bool:
    return bool(row.note) and row.note.startswith("derived: ")  # type: ignore[union-attr]


# -- KMS calls made on a caller's behalf ---------------------------------------------------


def test_derived_kms_calls_are_kept_linked_and_not_reads(invictus: FeedResult) -> None:
    """A fifth or more of the hour's secret rows were KMS calls Secrets Manager and SSM made
    for bert-jan's GetSecretValue / GetParameters, each counted as his second read."""
    derived = [r for r in invictus.rows if _derived(r)]
    assert len(derived) == 99
    assert 0.2 <= len(derived) / len(invictus.rows) <= 0.3
    assert Counter(r.operation for r in derived) == {
        "Decrypt": 73,
        "Encrypt": 22,
        "GenerateDataKey": 4,
    }
    assert {r.action for r in derived} == {"other"}
    assert {r.identity for r in derived} == {BERT}
    assert {r.source_ip for r in derived} == {None}
    services = Counter(r.note.split(" made by ")[1].split()[0] for r in derived)  # type: ignore[union-attr]
    assert set(services) == {"secretsmanager.amazonaws.com", "ssm.amazonaws.com"}
    # Linked: each names a secret or parameter that the caller's own call named (but one:
    # the GetSecretValue behind it fell outside this hour's objects).
    direct = {(r.identity, r.secret) for r in invictus.rows if not _derived(r)}
    unlinked = [r.secret for r in derived if (r.identity, r.secret) not in direct]
    assert unlinked == [
        "arn:aws:secretsmanager:us-east-1:123837392027:secret:stratus-red-team-retrieve-secret-8"
    ]
    # The caller's reads are the calls he made: no KMS operation among them.
    reads = [r for r in invictus.rows if r.identity == BERT and r.action == "read"]
    assert "Decrypt" not in {r.operation for r in reads}
    assert {r.operation for r in reads} <= {"GetSecretValue", "GetParameter", "GetParameters"}


def test_neither_baselines_nor_evidence_count_derived_calls(invictus: FeedResult) -> None:
    """Detectors count accesses by `access` (an access action and a secret): derived calls
    are not accesses, so each GetSecretValue is one read, as it was made."""
    frame = pd.DataFrame(invictus.rows, columns=list(FIELDS))
    frame["ts"] = pd.to_datetime(frame.pop("ts_us"), unit="us", utc=True)
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    ev = prepare(frame)
    derived = frame["note"].fillna("").str.startswith("derived: ").to_numpy()
    assert derived.sum() == 99
    assert not ev.access[derived].any()
    reads = (frame["action"] == "read").to_numpy() & ev.access
    gets = frame["operation"].isin(["GetSecretValue", "GetParameter", "GetParameters"])
    assert reads.sum() == (gets & (frame["action"] == "read")).sum()


def test_a_caller_decrypting_itself_is_still_a_read() -> None:
    """KMS Decrypt by a person from an address, naming a secret in its context, is theirs."""
    doc = {
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "eventTime": "2023-07-10T12:07:55Z",
        "eventID": "e1",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.168.10.20",
        "userIdentity": {"type": "IAMUser", "arn": BERT, "accountId": "123837392027"},
        "requestParameters": {
            "encryptionContext": {"SecretARN": "arn:aws:secretsmanager:us-east-1:1:secret:db"}
        },
    }
    (row,) = cloudtrail.parse(doc, None)
    assert (row.action, row.note, row.source_ip) == ("read", None, "192.168.10.20")
    # A GenerateDataKey a person makes is no secret access at all (as before).
    with pytest.raises(cloudtrail.NotSecretAccess):
        cloudtrail.parse({**doc, "eventName": "GenerateDataKey"}, None)


# -- the person behind a role --------------------------------------------------------------


def test_sso_and_email_sessions_keep_the_person_as_actor(invictus: FeedResult) -> None:
    panther = feed(PANTHER / "aws_ssm_decrypt_ssm_params.yml").rows
    sso = [r for r in panther if "aws-reserved/sso.amazonaws.com" in r.identity]
    assert sso and {r.actor for r in sso} == {"bobson.dugnutt"}
    assert {r.identity_kind for r in sso} == {"human"}  # the role stays the identity
    generated = feed(*sorted(GENERATED.glob("*.json"))).rows
    actors = {(r.identity.rsplit("/", 1)[-1], r.actor) for r in generated}
    assert ("AWSReservedSSO_AdministratorAccess_0123456789abcdef", "alice@example.com") in actors
    assert ("orders-api", None) in actors  # session `i-0abc...`: an instance, no person
    assert {r.actor for r in invictus.rows} == {None}  # IAM users are named already


def test_actor_is_stored(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        Ingestor(store).ingest([str(PANTHER)])
        events = store.events()
    assert set(events["actor"].dropna()) == {"bobson.dugnutt"}


# -- only addresses in source_ip ------------------------------------------------------------


def test_every_stored_source_ip_is_an_address(tmp_path: Path) -> None:
    """All fixtures of every format: `AWS Internal`, `secretsmanager.amazonaws.com`,
    `<Redacted>` never reach `source_ip`; the note says what stood there."""
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        Ingestor(store).ingest([str(FIXTURES)])
        events = store.events()
    addresses = events["source_ip"].dropna()
    assert len(addresses) > 100
    for value in set(addresses):
        ipaddress.ip_address(value)  # raises for anything else
    notes = events["note"].fillna("")
    # Secrets Manager's own deletions (`sourceIPAddress` secretsmanager.amazonaws.com)
    service = "source: secretsmanager.amazonaws.com (a service"
    assert notes.str.contains(service, regex=False).sum() == 39  # 38 real, 1 generated
    # KMS calls made for a caller (`AWS Internal` or the service): the note names it
    derived = events[notes.str.startswith("derived: ")]
    assert len(derived) == 99 and derived["source_ip"].isna().all()


# -- per-record accounting of a CloudTrail object ------------------------------------------


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("secretwatch")
    if script.exists():
        return [str(script)]
    found = shutil.which("secretwatch")
    return [found] if found else [sys.executable, "-c", "from pipeline.cli import app; app()"]


def test_cloudtrail_object_accounting_adds_up_in_the_cli(tmp_path: Path) -> None:
    """One S3 object: 3 records that make events (one of them 2 events), 2 not about
    secrets, 2 malformed. records read = made events + skipped + dead-lettered, and the
    dead letters printed are the dead letters stored, one per malformed record."""
    base = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": BERT, "accountId": "123837392027"},
        "eventTime": "2023-07-10T12:07:57Z",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.168.10.20",
        "recipientAccountId": "123837392027",
    }
    sm = {**base, "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue"}
    ssm = {**base, "eventSource": "ssm.amazonaws.com", "eventName": "GetParameters"}
    ec2 = {**base, "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances"}
    records = [
        {**sm, "eventID": "g1", "requestParameters": {"secretId": "db"}},
        {**ssm, "eventID": "g2", "requestParameters": {"names": ["/a", "/b"]}},
        {**ec2, "eventID": "s1"},
        {**sm, "eventID": "b1", "eventTime": "not a time", "requestParameters": {"secretId": "x"}},
        {**ec2, "eventID": "s2"},
        {**sm, "eventID": "b2", "userIdentity": "bert-jan"},  # not an object
        {**sm, "eventID": "g3", "requestParameters": {"secretId": "api"}},
    ]
    path = tmp_path / "123837392027_CloudTrail_us-east-1_20230710T1205Z_x.json"
    path.write_bytes(orjson.dumps({"Records": records}))
    store_path = tmp_path / "store.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "SECRETWATCH_CONFIG"}
    env["COLUMNS"] = "200"
    proc = subprocess.run(
        [*_console_script(), "ingest", str(path), "--store", str(store_path)],
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    output = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()

    def figure(label: str) -> int:
        (line,) = [x for x in output.splitlines() if x.strip().startswith(label)]
        return int(line.split()[-1].replace(",", ""))

    read, made = figure("records read"), figure("made events")
    skipped, dead = figure("held nothing about secrets"), figure("dead-lettered")
    assert (read, made, skipped, dead) == (7, 3, 2, 2)
    assert read == made + skipped + dead
    assert figure("stored (new)") == 4  # GetParameters names two
    assert "2 dead letters" in output
    with DuckDBStore(store_path, read_only=True) as store:
        letters = store.dead_letters()
        assert store.count() == 4
    assert len(letters) == dead
    assert sorted(letters["idx"]) == ["Records[3]", "Records[5]"]
