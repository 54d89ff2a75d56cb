"""GCP Cloud Audit Logs source: the published Secret Manager sample (trimmed: no timestamp,
insertId or principal) and generated entries for ListSecrets, AddSecretVersion and denials."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import orjson
import pytest
from helpers import DELETE, JSON_VALUES, by_id, feed_file, mutate, paths
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.record import EventRow, synthetic_id, to_event, to_micros
from pipeline.sources import gcp
from pipeline.sources.base import FeedResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gcp_audit"
SAMPLE = (
    FIXTURES
    / "datadog__stratus-red-team"
    / "gcp.credential-access.secretmanager-retrieve-secrets.sample-event.json"
)
GENERATED = FIXTURES / "secretwatch__generated" / "generated.jsonl"
PROD = "projects/prod-project/secrets/"
VICTIM = "projects/victim-project/secrets/stratus-red-team-retrieve-secret-8"


def feed(path: Path, backend: str | None = None) -> FeedResult:
    return feed_file(gcp.SPEC, path, backend)


@pytest.fixture(scope="module")
def generated() -> FeedResult:
    return feed(GENERATED)


def test_stratus_sample_says_what_it_assumed() -> None:
    result = feed(SAMPLE)
    (row,) = result.rows
    method = "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion"
    resource = "projects/victim-project/secrets/stratus-red-team-retrieve-secret-8/versions/latest"
    stamp = "2025-02-02T22:56:34.343726445Z"
    assert row == EventRow(
        event_id=synthetic_id("gcp", stamp, method, resource, "unknown", "7.7.7.7"),
        ts_us=to_micros(stamp),
        source="gcp",
        backend="victim-project",
        identity="unknown",
        identity_kind="unknown",
        secret=VICTIM,
        action="read",
        operation="AccessSecretVersion",
        outcome="success",
        source_ip="7.7.7.7",
        user_agent="stratus-red-team_4fbc5d44-9c4f-469f-a15b-0c85e6ad3241 grpc-go/1.70.0,gzip(gfe)",
        request_id=None,
        error=None,
        note="no timestamp in record; used requestMetadata.requestAttributes.time; "
        "no authenticationInfo.principalEmail in record; "
        "no insertId; id derived from record fields",
    )
    assert row.event_id == "gcp:sha256:b8bd428a08e969b6c67156626b177632"  # stable across runs
    assert feed(SAMPLE).rows[0].event_id == row.event_id


def test_backend_argument_wins() -> None:
    assert feed(SAMPLE, backend="victim-org").rows[0].backend == "victim-org"


def test_generated_accounting(generated: FeedResult) -> None:
    assert (generated.consumed, generated.skipped_records, generated.dead_records) == (6, 1, 0)
    assert dict(generated.skipped) == {"gcp: not Secret Manager (storage.googleapis.com)": 1}


def test_list_secrets_by_service_account_names_the_folder(generated: FeedResult) -> None:
    row = by_id(generated, "1x2y3z4a5b6c")
    assert (row.identity, row.identity_kind) == (
        "orders-api@prod-project.iam.gserviceaccount.com",
        "service",
    )
    assert (row.secret, row.action, row.operation) == (PROD, "list", "ListSecrets")
    assert (row.outcome, row.backend, row.note) == ("success", "prod-project", None)
    assert row.ts_us == to_micros("2026-03-02T03:12:00.100Z")


def test_add_secret_version_is_a_write_by_a_person(generated: FeedResult) -> None:
    row = by_id(generated, "2x2y3z4a5b6c")
    assert (row.identity, row.identity_kind) == ("alice@example.com", "human")
    assert (row.secret, row.action, row.operation) == (
        PROD + "db-password",
        "write",
        "AddSecretVersion",
    )
    created = by_id(generated, "6x2y3z4a5b6c")  # resourceName is the project; secretId names it
    assert (created.secret, created.action) == (PROD + "stripe-key", "write")


def test_permission_denied(generated: FeedResult) -> None:
    row = by_id(generated, "3x2y3z4a5b6c")
    assert (row.identity, row.outcome, row.action) == (
        "ci-runner@build-project.iam.gserviceaccount.com",
        "denied",
        "read",
    )
    assert (row.secret, row.operation) == (PROD + "db-password", "AccessSecretVersion")
    assert row.error is not None
    assert row.error.startswith("PERMISSION_DENIED: Permission '…' denied")  # nothing quoted


def test_not_found_is_an_error(generated: FeedResult) -> None:
    row = by_id(generated, "4x2y3z4a5b6c")
    assert (row.outcome, row.secret) == ("error", PROD + "missing")
    assert row.error == (
        "NOT_FOUND: Secret [projects/prod-project/secrets/missing] not found or has no versions."
    )


def test_delegation_is_noted(generated: FeedResult) -> None:
    row = by_id(generated, "7x2y3z4a5b6c")
    assert (row.identity, row.note) == (
        "orders-api@prod-project.iam.gserviceaccount.com",
        "delegated by bob@example.com",
    )


def _sample() -> dict:
    return orjson.loads(SAMPLE.read_bytes())


def test_timestamp_fallbacks() -> None:
    doc = {**_sample(), "receiveTimestamp": "2025-02-02T22:56:35Z"}
    (row,) = gcp.parse(doc, None)
    assert row.ts_us == to_micros("2025-02-02T22:56:35Z")
    assert row.note is not None and row.note.startswith(
        "no timestamp in record; used receiveTimestamp"
    )
    (row,) = gcp.parse({**doc, "timestamp": "2025-02-02T22:56:34Z", "insertId": "abc"}, None)
    assert (row.ts_us, row.event_id) == (to_micros("2025-02-02T22:56:34Z"), "abc")


def test_denied_by_authorization_info_without_status() -> None:
    doc = copy.deepcopy(_sample())
    doc["protoPayload"]["authorizationInfo"][0]["granted"] = False
    (row,) = gcp.parse(doc, None)
    assert (row.outcome, row.error) == (
        "denied",
        "PERMISSION_DENIED: secretmanager.versions.access not granted",
    )


def test_looks_like() -> None:
    assert gcp.looks_like(_sample())
    assert gcp.looks_like({"protoPayload": {"serviceName": "secretmanager.googleapis.com"}})
    for other in (
        {"protoPayload": "x"},
        {"protoPayload": {"@type": 5}},
        {"eventSource": "secretsmanager.amazonaws.com", "eventName": "x", "eventID": "y"},
        {"category": "AuditEvent", "operationName": "SecretGet"},
        {},
    ):
        assert not gcp.looks_like(other), other


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"protoPayload": None}, "gcp audit entry has no `protoPayload` object"),
        (
            {"protoPayload": {"methodName": "x"}},
            "gcp audit entry has no `protoPayload.serviceName`",
        ),
        (
            {"protoPayload": {"serviceName": "secretmanager.googleapis.com"}},
            "gcp audit entry has no `protoPayload.methodName`",
        ),
        (
            {"protoPayload": {"serviceName": "secretmanager.googleapis.com", "methodName": "x.Y"}},
            "gcp audit entry has no `timestamp`, `receiveTimestamp` or request time",
        ),
        ({"insertId": 5}, "gcp `insertId` must be a string, got int"),
        ({"resource": []}, "`resource` must be an object, got list"),
    ],
)
def test_malformed_entries_name_the_field(change: dict, reason: str) -> None:
    with pytest.raises(ParseError, match=re.escape(reason)):
        gcp.parse({**_sample(), **change}, None)


def test_status_code_must_be_a_number() -> None:
    doc = copy.deepcopy(_sample())
    doc["protoPayload"]["status"] = {"code": "7"}
    with pytest.raises(ParseError, match=r"`protoPayload.status.code` must be an integer"):
        gcp.parse(doc, None)


def test_other_services_are_skipped_with_a_stable_reason() -> None:
    doc = copy.deepcopy(_sample())
    doc["protoPayload"]["serviceName"] = "iam.googleapis.com"
    with pytest.raises(NotSecretAccess, match=r"^gcp: not Secret Manager \(iam.googleapis.com\)$"):
        gcp.parse(doc, None)


SEEDS = [_sample()] + [orjson.loads(line) for line in GENERATED.read_bytes().splitlines()]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_entries_fail_cleanly(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(SEEDS))
    path = data.draw(st.sampled_from(paths(doc)))
    try:
        rows = gcp.parse(mutate(doc, path, data.draw(st.just(DELETE) | JSON_VALUES)), None)
    except (ParseError, NotSecretAccess):
        return
    for row in rows:
        to_event(row)


def test_status_message_values_are_not_stored() -> None:
    """Issue 14 item 6: `status.message` can quote a value or carry a token."""
    doc = copy.deepcopy(_sample())
    doc["protoPayload"]["status"] = {
        "code": 3,
        "message": "Secret payload 'CANARY-gcp' is invalid; Bearer CANARYtokenvalue rejected",
    }
    (row,) = gcp.parse(doc, None)
    assert (
        row.error == "INVALID_ARGUMENT: Secret payload '…' is invalid; Bearer [REDACTED] rejected"
    )
