"""CloudTrail source against the published samples (invictus-ir, DataDog, Panther) and the
generated records that cover what they lack (RotateSecret, AccessDenied, EventBridge)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from helpers import DELETE, JSON_VALUES, by_id, mutate, paths
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.record import EventRow, to_event, to_micros
from pipeline.sources import cloudtrail
from pipeline.sources.base import FeedResult
from pipeline.sources.framing import file_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aws_cloudtrail"
INVICTUS = FIXTURES / "invictus-ir__aws_dataset"
DATADOG = FIXTURES / "datadog__stratus-red-team"
PANTHER = FIXTURES / "panther-labs__panther-analysis" / "aws_ssm_decrypt_ssm_params.yml"
GENERATED = FIXTURES / "secretwatch__generated"
ACCT = "123837392027"
SM_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCT}:secret:"
SSM_ARN = f"arn:aws:ssm:us-east-1:{ACCT}:parameter/credentials/stratus-red-team/"


def feed(*paths: Path) -> FeedResult:
    """Every file through its own parser, as ingest does; every row checked by the model."""
    out = FeedResult()
    for path in paths:
        parser = cloudtrail.SPEC.new_parser(None)
        for records in file_records(path):
            out.extend(parser.feed(records, str(path)))
        out.extend(parser.flush(str(path)))
    for row in out.rows:
        to_event(row)
    return out


@pytest.fixture(scope="module")
def invictus() -> FeedResult:
    return feed(*sorted(INVICTUS.glob("*.json")))


@pytest.fixture(scope="module")
def generated() -> FeedResult:
    return feed(*sorted(GENERATED.glob("*.json")))


def test_invictus_every_record_accounted(invictus: FeedResult) -> None:
    # 46 S3 objects of 1,880 records, counted per record: 344 are secret access (353
    # events: GetParameters names several; 99 of them KMS calls Secrets Manager or SSM made
    # for the caller, kept as `other`), 6 tamper with the trail (StopLogging x3, DeleteTrail
    # x2, PutEventSelectors: control-plane events, no longer skipped), 1,530 are neither;
    # nothing is dead-lettered.
    assert (invictus.consumed, invictus.skipped_records, invictus.dead_records) == (350, 1530, 0)
    assert len(invictus.rows) == 359
    assert sum(invictus.skipped.values()) == 1530
    trail = {"StopLogging", "DeleteTrail", "PutEventSelectors"}
    assert sum(r.operation in trail and r.action == "control" for r in invictus.rows) == 6
    assert invictus.skipped["cloudtrail: not a secrets API (ec2.amazonaws.com)"] == 615
    assert invictus.skipped["cloudtrail: not a secrets API (iam.amazonaws.com)"] == 292
    assert invictus.skipped["cloudtrail: ssm.amazonaws.com call not about parameters"] == 40
    assert invictus.skipped["cloudtrail: kms.amazonaws.com call other than Decrypt"] == 0
    assert {r.identity for r in invictus.rows} == {
        f"arn:aws:iam::{ACCT}:user/bert-jan",
        "secretsmanager.amazonaws.com",
    }


def test_get_secret_value_by_iam_user(invictus: FeedResult) -> None:
    row = by_id(invictus, "7a0f2209-e27e-4049-8522-716a09badd66")
    assert row == EventRow(
        event_id="7a0f2209-e27e-4049-8522-716a09badd66",
        ts_us=to_micros("2023-07-10T12:07:57Z"),
        source="aws",
        backend=f"{ACCT}/us-east-1",
        identity=f"arn:aws:iam::{ACCT}:user/bert-jan",
        identity_kind="human",
        secret=SM_ARN + "stratus-red-team-retrieve-secret-13",
        action="read",
        operation="GetSecretValue",
        outcome="success",
        source_ip="192.168.10.20",
        user_agent=row.user_agent,
        request_id="bbffe753-442e-4bd3-9f19-35e327eb8cb1",
        error=None,
        note=None,
    )
    assert row.user_agent is not None and row.user_agent.startswith("APN/1.0 HashiCorp/1.0")


def test_kms_decrypt_for_secrets_manager_names_the_secret(invictus: FeedResult) -> None:
    # Decrypt invoked by secretsmanager.amazonaws.com on the user's behalf: the user it is,
    # linked to the secret, but not a second read (tests/sources/test_cloudtrail_fidelity.py).
    row = by_id(invictus, "c5fcc777-485b-4414-bebe-f7c49172b598")
    assert (row.identity, row.identity_kind) == (f"arn:aws:iam::{ACCT}:user/bert-jan", "human")
    assert row.secret == SM_ARN + "stratus-red-team-retrieve-secret-13"
    assert (row.operation, row.action, row.outcome) == ("Decrypt", "other", "success")
    assert row.source_ip is None  # a service, not an address
    assert row.note == cloudtrail.DERIVED_NOTE.format(
        event="Decrypt", service="secretsmanager.amazonaws.com"
    )


def test_kms_decrypt_for_ssm_names_the_parameter(invictus: FeedResult) -> None:
    row = by_id(invictus, "208eff3a-7a3d-4acf-a6cc-3e5c09ae1864")
    assert row.secret == SSM_ARN + "credentials-12"
    assert (row.action, row.source_ip) == ("other", None)  # `AWS Internal`, not an address
    assert row.note is not None and "ssm.amazonaws.com" in row.note


def test_get_parameters_fans_out_one_row_per_name(invictus: FeedResult) -> None:
    rows = [r for r in invictus.rows if r.event_id.startswith("b5b0961f-1d1e-423f-9944-")]
    assert [r.event_id for r in rows] == [
        f"b5b0961f-1d1e-423f-9944-1024a7267042#{i}" for i in range(10)
    ]
    numbers = [11, 13, 20, 22, 23, 27, 28, 36, 5, 7]
    assert [r.secret for r in rows] == [SSM_ARN + f"credentials-{n}" for n in numbers]
    assert {(r.action, r.outcome, r.request_id) for r in rows} == {
        ("read", "success", "4ab6296b-d441-4381-b946-67a8bd450856")
    }


def test_service_event_drops_the_random_suffix(invictus: FeedResult) -> None:
    row = by_id(invictus, "dee00220-14e7-4b85-b76f-3a7c1afae272")
    assert (row.identity, row.identity_kind) == ("secretsmanager.amazonaws.com", "service")
    assert row.secret == SM_ARN + "stratus-red-team-retrieve-secret-16"
    assert (row.operation, row.action) == ("StartSecretVersionDelete", "delete")
    deleted = by_id(invictus, "e0faf308-3533-451c-9998-66db28a35423")
    assert (deleted.operation, deleted.action) == ("DeleteSecret", "delete")
    assert deleted.secret == SM_ARN + "stratus-red-team-retrieve-secret-10"


def test_throttled_call_without_parameters_is_kept_as_error(invictus: FeedResult) -> None:
    row = by_id(invictus, "763462b3-e7d8-44a7-94d4-054e12ac4596")
    assert (row.operation, row.action, row.outcome) == ("DeleteParameter", "delete", "error")
    assert row.error == "ThrottlingException: Rate exceeded"
    assert row.secret is None
    assert row.note == "requestParameters not logged; parameter unknown"


def test_describe_parameters_by_name_is_a_listing_of_that_parameter(invictus: FeedResult) -> None:
    row = by_id(invictus, "ba56cadb-8c7d-40bd-95cf-9635edb92b17")
    assert (row.secret, row.action) == (SSM_ARN + "credentials-34", "list")
    throttled = by_id(invictus, "77e4b31e-94ea-40fa-b4cf-14e78268510e")
    assert (throttled.secret, throttled.outcome, throttled.note) == (
        f"arn:aws:ssm:us-east-1:{ACCT}:parameter/*",
        "error",
        "requestParameters not logged",
    )


def test_put_parameter_value_never_enters_a_row(invictus: FeedResult) -> None:
    row = by_id(invictus, "808628ea-2179-4350-b919-09447cde9bac")
    assert (row.secret, row.action) == (SSM_ARN + "credentials-25", "write")
    assert not any("HIDDEN_DUE_TO_SECURITY_REASONS" in str(v) for r in invictus.rows for v in r)


def test_datadog_batch_get_secret_value_by_filter() -> None:
    result = feed(DATADOG / "aws.credential-access.secretsmanager-batch-retrieve-secrets.json")
    assert (result.consumed, len(result.rows)) == (5, 5)  # 5 records in one JSON array
    row = by_id(result, "61619dbf-c10b-471e-9d78-8199a2f8233a")
    assert (row.secret, row.note) == (
        "arn:aws:secretsmanager:eu-westwest-1r:165109126369:secret:*",
        "batch by filter: tag-key=StratusRedTeam",
    )
    assert (row.identity, row.identity_kind) == (
        "arn:aws:iam::165109126369:user/christophe",
        "human",
    )
    assert (row.action, row.outcome, row.backend) == (
        "read",
        "success",
        "165109126369/eu-westwest-1r",
    )
    assert row.source_ip == "88.223.251.255"  # an anonymised address is kept as given


def test_datadog_get_password_data_denied() -> None:
    result = feed(DATADOG / "aws.credential-access.ec2-get-password-data.json")
    assert len(result.rows) == 30
    assert dict(result.skipped) == {"cloudtrail: not a secrets API (sts.amazonaws.com)": 4}
    row = by_id(result, "450230d4-b39e-4a18-a6a0-d07a6e2105cb")
    role = "arn:aws:iam::457448411975:role/stratus-red-team-ec2-get-password-data-role"
    assert (row.identity, row.identity_kind) == (role, "service")
    instance = "arn:aws:ec2:apiso-northsouth-3r:457448411975:instance/i-i2jnm5swa59p4fxg"
    assert (row.secret, row.action, row.outcome) == (f"{instance}/password-data", "read", "denied")
    assert row.error is not None
    assert row.error.startswith("Client.UnauthorizedOperation: You are not authorized")
    assert len(row.error) <= 256
    assert {r.outcome for r in result.rows} == {"denied"}


def test_datadog_ssm_discovery_and_retrieval() -> None:
    result = feed(DATADOG / "aws.credential-access.ssm-retrieve-securestring-parameters.json")
    listing = [r for r in result.rows if r.operation == "DescribeParameters"]
    assert {r.secret for r in listing} == {"arn:aws:ssm:cn-west-3r:933175858973:parameter/*"}
    assert {r.action for r in listing} == {"list"}
    reads = [r for r in result.rows if r.operation == "GetParameters"]
    assert len(reads) == 42
    assert (
        "arn:aws:ssm:cn-west-3r:933175858973:parameter/credentials/stratus-red-team/"
        "credentials-40" in {r.secret for r in reads}
    )


def test_panther_yaml_sso_role_and_normalised_time() -> None:
    result = feed(PANTHER)
    assert (result.consumed, len(result.rows)) == (5, 29)
    row = by_id(result, "587e6d58-a653-4fd9-859f-367dc1bad98c")
    sso = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/us-west-2/SampleRole"
    assert (row.identity, row.identity_kind) == (sso, "human")
    assert row.ts_us == to_micros("2025-02-14T19:43:09+00:00")
    param = "arn:aws:ssm:us-west-2:111122223333:parameter/credentials/stratus-red-team/"
    assert (row.secret, row.action) == (param + "credentials-25", "read")
    listing = by_id(result, "6c6de06f-eb03-44cd-a95f-928a780ce28a")
    assert (listing.action, listing.secret) == (
        "list",
        "arn:aws:ssm:us-west-2:111122223333:parameter/credentials/stratus-red-team/credentials-1",
    )


G = "0a000000-0000-4000-8000-0000000000"
GEN_SM = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:"


def test_generated_rotate_secret(generated: FeedResult) -> None:
    row = by_id(generated, G + "01")
    assert row.identity == "arn:aws:iam::111122223333:role/service-role/orders-db-rotation"
    assert (row.identity_kind, row.action, row.outcome) == ("service", "rotate", "success")
    assert row.secret == GEN_SM + "prod/orders/db"
    assert (by_id(generated, G + "07").operation, by_id(generated, G + "07").action) == (
        "CancelRotateSecret",
        "write",
    )


def test_generated_access_denied(generated: FeedResult) -> None:
    # No sessionIssuer: the role comes from the session ARN, never the session name.
    bare = by_id(generated, G + "02")
    assert (bare.identity, bare.outcome) == ("arn:aws:iam::111122223333:role/orders-api", "denied")
    assert (bare.secret, bare.note) == (None, "no secret id in record")
    assert bare.error is not None and bare.error.startswith("AccessDenied: User: arn:aws:sts::")
    named = by_id(generated, G + "03")
    assert (named.secret, named.outcome) == (GEN_SM + "prod/payments/api-key", "denied")
    assert named.error == (
        "AccessDeniedException: User is not authorized to perform: secretsmanager:GetSecretValue"
    )


def test_generated_identities(generated: FeedResult) -> None:
    sso = by_id(generated, G + "04")
    assert (sso.identity, sso.identity_kind) == (
        "arn:aws:iam::111122223333:role/AWSReservedSSO_AdministratorAccess_0123456789abcdef",
        "human",
    )
    root = by_id(generated, G + "05")
    assert (root.identity, root.identity_kind) == ("arn:aws:iam::111122223333:root", "root")
    assert (root.secret, root.action, root.note) == (
        GEN_SM + "*",
        "list",
        "list by filter: name=prod/",
    )
    user = by_id(generated, G + "06")  # IAMUser without arn: built from userName
    assert (user.identity, user.identity_kind) == (
        "arn:aws:iam::111122223333:user/deploy-bot",
        "human",
    )


def test_generated_secret_value_never_enters_a_row(generated: FeedResult) -> None:
    row = by_id(generated, G + "06")
    assert (row.secret, row.action) == (GEN_SM + "prod/orders/db", "write")
    assert not any("hunter2" in str(v) for r in generated.rows for v in r)


def test_generated_paths_batches_and_keys(generated: FeedResult) -> None:
    path = by_id(generated, G + "08")
    assert (path.secret, path.operation) == (
        "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/orders/",
        "GetParametersByPath",
    )
    assert [by_id(generated, G + f"09#{i}").secret for i in (0, 1)] == [
        GEN_SM + "prod/orders/db",
        GEN_SM + "prod/orders/stripe-key",
    ]
    key = by_id(generated, G + "10")
    assert (key.secret, key.operation) == (
        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "Decrypt",
    )
    assert generated.skipped["cloudtrail: kms.amazonaws.com call other than Decrypt"] == 1


def test_generated_scheduled_rotation_is_rotation_evidence(generated: FeedResult) -> None:
    # Scheduled rotation calls no API; AWS logs RotationSucceeded, which must count as rotate.
    row = by_id(generated, G + "12")
    assert (row.operation, row.action, row.identity) == (
        "RotationSucceeded",
        "rotate",
        "secretsmanager.amazonaws.com",
    )
    assert row.secret == GEN_SM + "prod/orders/db"


def test_generated_eventbridge_envelope(generated: FeedResult) -> None:
    row = by_id(generated, G + "13")
    assert (row.operation, row.secret, row.identity) == (
        "GetSecretValue",
        GEN_SM + "prod/orders/db",
        "arn:aws:iam::111122223333:role/orders-api",
    )


def _first_record(path: Path) -> dict:
    doc = orjson.loads(path.read_bytes())
    return doc["Records"][0] if "Records" in doc else doc


def test_looks_like() -> None:
    s3_object = orjson.loads(next(INVICTUS.glob("*.json")).read_bytes())
    assert cloudtrail.looks_like(s3_object)
    assert cloudtrail.looks_like(s3_object["Records"][0])
    assert cloudtrail.looks_like(_first_record(GENERATED / "eventbridge_get_secret_value.json"))
    for other in (
        {"protoPayload": {"serviceName": "secretmanager.googleapis.com"}},
        {"kind": "Event", "auditID": "x"},
        {"category": "AuditEvent", "operationName": "SecretGet"},
        {"Records": []},
        {"Records": [1, 2]},
        {"eventSource": 3, "eventName": "x", "eventTime": "y"},
        {"detail-type": "x", "detail": [1]},
        {},
    ):
        assert not cloudtrail.looks_like(other), other


BASE = {
    "eventTime": "2026-03-02T03:00:00Z",
    "eventSource": "secretsmanager.amazonaws.com",
    "eventName": "GetSecretValue",
    "awsRegion": "eu-west-1",
    "eventID": "e1",
    "recipientAccountId": "111122223333",
    "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/u"},
    "requestParameters": {"secretId": "db"},
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"eventSource": 3}, "cloudtrail `eventSource` must be a string, got int"),
        ({"eventName": None}, "cloudtrail record lacks `eventSource` or `eventName`"),
        ({"eventTime": None}, "cloudtrail record has no `eventTime`"),
        ({"eventTime": "yesterday"}, "timestamp 'yesterday' is not ISO-8601"),
        ({"userIdentity": ["x"]}, "`userIdentity` must be an object, got list"),
        ({"requestParameters": "db"}, "`requestParameters` must be an object, got str"),
        ({"requestParameters": {"secretId": 7}}, "`requestParameters.secretId` must be a string"),
    ],
)
def test_malformed_records_name_the_field(change: dict, reason: str) -> None:
    with pytest.raises(ParseError, match=re.escape(reason)):
        cloudtrail.parse({**BASE, **change}, None)


def test_backend_argument_and_missing_identity() -> None:
    (row,) = cloudtrail.parse({**BASE, "userIdentity": None, "eventID": None}, "prod-account")
    assert (row.backend, row.identity, row.identity_kind) == ("prod-account", "unknown", "unknown")
    assert row.note == "no userIdentity; no eventID; id derived from record fields"
    assert row.event_id.startswith("aws:sha256:")
    assert cloudtrail.parse({**BASE, "userIdentity": None, "eventID": None}, "p")[0].event_id == (
        row.event_id
    )


def test_not_secret_access_reasons_are_low_cardinality() -> None:
    with pytest.raises(NotSecretAccess, match=r"^cloudtrail: not a secrets API \(s3\.amazonaws"):
        cloudtrail.parse({**BASE, "eventSource": "s3.amazonaws.com", "eventID": "e9"}, None)


# Robustness: a real record with any one field replaced by any JSON value (or removed) either
def _seeds() -> list[dict]:
    invictus = [
        r for p in sorted(INVICTUS.glob("*.json")) for r in orjson.loads(p.read_bytes())["Records"]
    ]
    wanted = {
        "7a0f2209-e27e-4049-8522-716a09badd66", "c5fcc777-485b-4414-bebe-f7c49172b598",
        "b5b0961f-1d1e-423f-9944-1024a7267042", "dee00220-14e7-4b85-b76f-3a7c1afae272",
        "ba56cadb-8c7d-40bd-95cf-9635edb92b17", "208eff3a-7a3d-4acf-a6cc-3e5c09ae1864",
    }  # fmt: skip
    seeds = [r for r in invictus if r["eventID"] in wanted]
    seeds += orjson.loads(
        (DATADOG / "aws.credential-access.ec2-get-password-data.json").read_bytes()
    )[:1]
    seeds += orjson.loads((GENERATED / "generated_records.json").read_bytes())["Records"]
    return seeds


SEEDS = _seeds()


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_mutated_records_fail_cleanly(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(SEEDS))
    path = data.draw(st.sampled_from(paths(doc)))
    value = data.draw(st.just(DELETE) | JSON_VALUES)
    try:
        rows = cloudtrail.parse(mutate(doc, path, value), None)
    except (ParseError, NotSecretAccess):
        return
    for row in rows:
        to_event(row)


def test_error_message_values_are_not_stored() -> None:
    """Issue 14 item 6: AWS quotes the refused value in `errorMessage`."""
    message = (
        "1 validation error detected: Value 'CANARY-ct' at 'secretString' failed to satisfy "
        "constraint: Member must have length less than or equal to 65536"
    )
    doc = {**BASE, "errorCode": "ValidationException", "errorMessage": message}
    (row,) = cloudtrail.parse(doc, None)
    assert row.error == (
        "ValidationException: 1 validation error detected: Value '…' at 'secretString' failed "
        "to satisfy constraint: Member must have length less than or equal to 65536"
    )
