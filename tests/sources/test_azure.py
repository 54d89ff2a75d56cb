"""Azure Key Vault AuditEvent source. The published samples are read only, so the fixtures
here are written in their shape; the originals are parsed too when the shared folder exists."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from helpers import DELETE, JSON_VALUES, feed_file, mutate, paths
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.record import EventRow, to_event, to_micros
from pipeline.sources import azure
from pipeline.sources.base import FeedResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "azure_keyvault"
OWN = FIXTURES / "secretwatch__generated"
SHARED = Path("/work/shared/samples/azure_keyvault/unattributed__securathesis")
ATTACKER = "attacker@securathesis.onmicrosoft.com"
ACTIVITY_LOG = "Azure Activity Log record, not a Key Vault AuditEvent (category Administrative)"
NOTJSON_VALUES = "not valid JSON: "
KEYS_FOLDER = "securaallkeyvault/keys/"


def feed(path: Path, backend: str | None = None) -> FeedResult:
    return feed_file(azure.SPEC, path, backend)


def one(path: Path) -> EventRow:
    result = feed(path)
    assert (result.consumed, result.skipped_records, result.dead_records) == (1, 0, 0)
    (row,) = result.rows
    return row


# (file, [(operation, action, secret)], [(line, reason prefix)]) for the read-only originals.
SHARED_EXPECTED = [
    ("index-id-44338898090__KeyList.json", [("KeyList", "list", "securaallkeyvault/keys/")], []),
    (
        "index-id-44826414507__CertificateList.json",
        [("CertificateList", "list", "securaallkeyvault/certificates/")],
        [],
    ),
    (
        "index-id-44556964520__VaultPut_plus_ActivityLog_notes.txt",
        # An attacker's VaultPut setting the network rules and RBAC switch: control-plane.
        [("VaultPut:networkAcls+enableRbacAuthorization", "control", "securaallkeyvault/")],
        [(1, NOTJSON_VALUES), (45, NOTJSON_VALUES), (46, ACTIVITY_LOG)],
    ),
]


@pytest.mark.parametrize(
    ("name", "rows", "dead"), SHARED_EXPECTED, ids=[e[0] for e in SHARED_EXPECTED]
)
def test_shared_read_only_sample(name: str, rows: list, dead: list) -> None:
    if not SHARED.parent.parent.exists():
        pytest.skip("/work/shared/samples is absent")
    result = feed(SHARED / name)
    assert [(r.operation, r.action, r.secret) for r in result.rows] == rows
    assert [d.line for d in result.dead] == [line for line, _ in dead]
    for letter, (_, prefix) in zip(result.dead, dead, strict=True):
        assert letter.reason.startswith(prefix), letter.reason
    assert result.accounted == len(rows) + len(dead)
    for row in result.rows:  # the attacker signed in with Azure CLI: the person, not the app
        assert (row.identity, row.identity_kind) == (ATTACKER, "human")
        assert (row.backend, row.source_ip, row.outcome) == ("securaallkeyvault", None, "success")
        assert row.note is not None and "redacted" in row.note  # `<Redacted>`: no address


def test_shared_key_list_in_full() -> None:
    if not SHARED.parent.parent.exists():
        pytest.skip("/work/shared/samples is absent")
    (row,) = feed(SHARED / "index-id-44338898090__KeyList.json").rows
    assert row == EventRow(
        event_id="611c27bd-7fed-4393-a4f6-9b5b223795af",
        ts_us=to_micros("2022-06-30T11:56:36.719492Z"),
        source="azure",
        backend="securaallkeyvault",
        identity=ATTACKER,
        identity_kind="human",
        secret=KEYS_FOLDER,
        action="list",
        operation="KeyList",
        outcome="success",
        source_ip=None,  # `<Redacted>` is no address: said in the note
        user_agent="python/3.8.9 (Windows-10-10.0.19041-SP0) msrest/0.6.21 msrest_azure/0.6.4 "
        "azure-keyvault/7.0 Azure-SDK-For-Python",
        request_id="611c27bd-7fed-4393-a4f6-9b5b223795af",
        error=None,
        note="source address redacted in the log",
    )


def test_key_list_by_user() -> None:
    row = one(OWN / "keylist.json")
    assert (row.identity, row.identity_kind) == ("alice@contoso.example", "human")
    assert (row.operation, row.action, row.secret) == ("KeyList", "list", "orders-kv/keys/")
    assert (row.backend, row.event_id) == ("orders-kv", "c0ffee00-0000-4000-8000-000000000001")
    assert row.ts_us == to_micros("2026-03-02T03:12:01.123456Z")


def test_secret_get_by_service_principal() -> None:
    row = one(OWN / "secretget_service_principal.json")
    assert (row.identity, row.identity_kind) == ("3f4e5d6c-0000-4000-8000-0000000a99a1", "service")
    assert (row.operation, row.action, row.outcome) == ("SecretGet", "read", "success")
    assert (row.secret, row.source_ip) == ("orders-kv/secrets/db-password", "10.1.2.3")
    assert (
        row.user_agent
        == "azsdk-net-Security.KeyVault.Secrets/4.6.0 (.NET 8.0.2; Ubuntu 22.04.4 LTS)"
    )


def test_secret_list_and_set() -> None:
    listed = one(OWN / "secretlist.json")
    assert (listed.operation, listed.action, listed.secret) == (
        "SecretList",
        "list",
        "orders-kv/secrets/",
    )
    written = one(OWN / "secretset.json")
    assert (written.identity, written.operation, written.action) == (
        "alice@contoso.example",
        "SecretSet",
        "write",
    )
    assert (written.secret, written.outcome) == ("orders-kv/secrets/stripe-key", "success")


def test_forbidden_secret_get() -> None:
    row = one(OWN / "secretget_denied_403.json")
    assert (row.identity, row.identity_kind) == ("7d8e9f00-0000-4000-8000-0000000bad01", "service")
    assert (row.action, row.outcome, row.secret) == (
        "read",
        "denied",
        "orders-kv/secrets/db-password",
    )
    assert row.error is not None
    assert row.error == (  # quoted names and ids are not stored (issue 14 item 6)
        "403 Forbidden The user, group or application '…' does not have secrets get permission "
        "on key vault '…'."
    )


def test_forbidden_list_by_object_id_only() -> None:
    row = one(OWN / "secretlist_denied_403.json")
    assert (row.identity, row.identity_kind) == ("1c2d3e4f-0000-4000-8000-0000000bad00", "unknown")
    assert row.note == "no upn or appid in claims; identity is the object id"
    assert (row.action, row.outcome, row.error) == ("list", "denied", "403 Forbidden")


def test_purge_of_deleted_secret_names_the_secret() -> None:
    row = one(OWN / "secretpurge_deleted.json")
    assert (row.operation, row.action, row.outcome, row.secret) == (
        "SecretPurge",
        "delete",
        "success",
        "orders-kv/secrets/old-api-key",
    )


def test_mixed_file_keeps_the_audit_event_and_dead_letters_the_rest() -> None:
    result = feed(OWN / "vaultget_plus_activitylog_notes.txt")
    (row,) = result.rows
    assert (row.operation, row.action, row.secret) == ("VaultGet", "other", None)
    assert (row.identity, row.identity_kind) == ("alice@contoso.example", "human")  # long URI claim
    assert [d.line for d in result.dead] == [1, 29, 30]
    assert [d.reason.startswith(NOTJSON_VALUES) for d in result.dead[:2]] == [True, True]
    assert result.dead[2].reason == ACTIVITY_LOG
    assert (result.consumed, result.dead_records, result.accounted) == (1, 3, 4)


def _doc(name: str = "secretget_service_principal.json") -> dict:
    return orjson.loads((OWN / name).read_bytes())


def test_status_as_string_and_result_fallbacks() -> None:
    doc = _doc()
    doc["properties"]["httpStatusCode"] = "403"
    assert azure.parse(doc, None)[0].outcome == "denied"
    del doc["properties"]["httpStatusCode"]
    assert azure.parse({**doc, "resultSignature": "Unauthorized"}, None)[0].outcome == "denied"
    failed = azure.parse({**doc, "resultSignature": None, "resultType": "Failure"}, None)[0]
    assert (failed.outcome, failed.error) == ("error", "Failure")


def test_event_id_fallbacks() -> None:
    doc = _doc()
    assert azure.parse({**doc, "id": "request-7"}, None)[0].event_id == "request-7"
    (row,) = azure.parse({**doc, "correlationId": None}, "kv-prod")
    assert row.event_id.startswith("azure:sha256:")
    assert row.note == "no request or correlation id; id derived from record fields"
    assert (row.backend, row.request_id) == ("kv-prod", None)


def test_looks_like() -> None:
    assert azure.looks_like(_doc())
    assert azure.looks_like({"category": "AuditEvent", "operationName": "SecretGet"})
    for other in (
        {"category": {"value": "Administrative"}, "operationName": {"value": "x"}},
        {
            "category": "AuditEvent",
            "operationName": "x",
            "resourceId": "/SUBSCRIPTIONS/S/PROVIDERS/MICROSOFT.SQL/X",
        },
        {"category": "AuditEvent", "operationName": "x", "resourceId": 7},
        {"category": "AuditEvent"},
        {"kind": "Event", "auditID": "x"},
        {},
    ):
        assert not azure.looks_like(other), other


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"category": {"value": "Administrative"}}, ACTIVITY_LOG),
        ({"category": None}, "azure record has no `category`; not a Key Vault AuditEvent"),
        ({"operationName": None}, "azure AuditEvent has no `operationName`"),
        ({"time": None}, "azure AuditEvent has no `time`"),
        ({"identity": "someone"}, "`identity` must be an object, got str"),
        ({"callerIpAddress": 10}, "azure `callerIpAddress` must be a string, got int"),
        (
            {"properties": {"httpStatusCode": [403]}},
            "azure `properties.httpStatusCode` must be a number",
        ),
    ],
)
def test_malformed_records_name_the_field(change: dict, reason: str) -> None:
    with pytest.raises(ParseError, match=re.escape(reason)):
        azure.parse({**_doc(), **change}, None)


def test_other_key_vault_categories_are_skipped() -> None:
    with pytest.raises(
        NotSecretAccess, match="^azure: Key Vault log category AzurePolicyEvaluationDetails"
    ):
        azure.parse({**_doc(), "category": "AzurePolicyEvaluationDetails"}, None)


SEEDS = [_doc(p.name) for p in sorted(OWN.glob("*.json"))]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_records_fail_cleanly(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(SEEDS))
    path = data.draw(st.sampled_from(paths(doc)))
    try:
        rows = azure.parse(mutate(doc, path, data.draw(st.just(DELETE) | JSON_VALUES)), None)
    except (ParseError, NotSecretAccess):
        return
    for row in rows:
        to_event(row)


def test_storage_export_with_lowercase_records_wrapper(tmp_path: Path) -> None:
    # Diagnostic settings that archive to a storage account or Event Hub wrap records in
    # {"records": [...]}; both records come out, in order, each with its index.
    get = _doc()
    listing = orjson.loads((OWN / "secretlist.json").read_bytes())
    export = tmp_path / "PT1H.json"
    export.write_bytes(orjson.dumps({"records": [get, listing]}))
    result = feed(export)
    assert (result.consumed, result.dead_records) == (2, 0)  # counted per audit record
    assert [(r.operation, r.secret) for r in result.rows] == [
        ("SecretGet", "orders-kv/secrets/db-password"),
        (listing["operationName"], one(OWN / "secretlist.json").secret),
    ]


def test_result_description_values_are_not_stored() -> None:
    """Issue 14 item 6: `resultDescription` quotes names and values."""
    doc = orjson.loads((OWN / "secretget_denied_403.json").read_bytes())
    doc["resultDescription"] = "Value 'CANARY-az' is not valid for secret 'db-password'."
    (row,) = azure.parse(doc, None)
    assert row.error == "403 Forbidden Value '…' is not valid for secret '…'."
