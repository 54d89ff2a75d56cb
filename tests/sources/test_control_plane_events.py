"""Control-plane and tampering calls, per backend, on real records (the Vault 1.21.4 dev
server's audit log, the Stratus Red Team detonations in the invictus-ir CloudTrail hour,
the falco Kubernetes events, the Azure fixtures) and on real-shaped ones: a real record with
the one field changed that makes it the call under test. (Named `_events`: the detector's
tests are tests/detectors/test_control_plane.py, and test basenames must differ.)"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest
from helpers import feed_file

from detectors import events as detector_events
from pipeline.errors import NotSecretAccess, ParseError
from pipeline.record import CONTROL_NOTE, TAMPER_NOTE, EventRow, to_event
from pipeline.sources import azure, cloudtrail, control_plane, gcp, k8s, vault
from pipeline.sources.base import FeedResult, Record

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VAULT_LOG = FIXTURES / "vault" / "vault-1.21.4-dev" / "audit.log"
INVICTUS = FIXTURES / "aws_cloudtrail" / "invictus-ir__aws_dataset"
FALCO = FIXTURES / "k8s_audit" / "falcosecurity__falco"
AZURE = FIXTURES / "azure_keyvault" / "secretwatch__generated"
GCP_SAMPLE = (
    FIXTURES
    / "gcp_audit"
    / "datadog__stratus-red-team"
    / "gcp.credential-access.secretmanager-retrieve-secrets.sample-event.json"
)
ACCT = "123837392027"
BERT = f"arn:aws:iam::{ACCT}:user/bert-jan"


def test_the_note_marks_are_the_detectors() -> None:
    assert (CONTROL_NOTE, TAMPER_NOTE) == (
        detector_events.CONTROL_NOTE,
        detector_events.TAMPER_NOTE,
    )


# -- Vault ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vault_log() -> FeedResult:
    return feed_file(vault.SPEC, VAULT_LOG)


def _rows(result: FeedResult, operation: str) -> list[EventRow]:
    return [r for r in result.rows if r.operation == operation]


def test_vault_audit_devices_enabled_are_tampering(vault_log: FeedResult) -> None:
    rows = _rows(vault_log, "audit-enable")
    assert sorted(r.secret for r in rows) == [
        "sys/audit/file",
        "sys/audit/file2",
        "sys/audit/file4",
        "sys/audit/socket",
    ]
    assert {(r.identity, r.action) for r in rows} == {("root", "control")}
    assert all(
        r.note == f"{TAMPER_NOTE}enabled the Vault audit device {r.secret[10:]}/" for r in rows
    )


def test_vault_policy_writes_and_auth_methods(vault_log: FeedResult) -> None:
    policies = _rows(vault_log, "policy-write")
    assert sorted((r.secret, r.action) for r in policies) == [
        ("sys/policies/acl/billing-read", "control"),
        ("sys/policies/acl/orders-read", "control"),
    ]
    assert {r.note for r in policies} == {
        f"{CONTROL_NOTE}wrote the ACL policy orders-read",
        f"{CONTROL_NOTE}wrote the ACL policy billing-read",
    }
    assert sorted(r.secret for r in _rows(vault_log, "auth-enable")) == [
        "sys/auth/approle",
        "sys/auth/userpass",
    ]


def test_vault_secret_id_generation_stays_a_credential_read(vault_log: FeedResult) -> None:
    (row,) = _rows(vault_log, "secret-id-generate")
    assert (row.secret, row.action, row.identity) == (
        "auth/approle/role/orders-api",
        "read",
        "root",
    )
    assert row.note == f"{CONTROL_NOTE}generated a secret-id for AppRole orders-api"


def test_vault_reads_of_the_control_plane_are_not_changes(vault_log: FeedResult) -> None:
    lookups = [r for r in vault_log.rows if r.secret is None and r.action == "other"]
    assert lookups  # sys/internal/ui/mounts, sys/mounts reads, unwraps
    assert all(not (r.note or "").startswith((CONTROL_NOTE, TAMPER_NOTE)) for r in lookups)
    assert control_plane.vault("sys/policies/acl/orders-read", "read") is None
    assert control_plane.vault("sys/audit", "read") is None


def test_ordinary_child_tokens_are_not_control(vault_log: FeedResult) -> None:
    created = [r for r in vault_log.rows if r.operation == "update" and r.action == "auth"]
    assert created  # ops 55 and 58: tokens with orders-read / billing-read
    assert not _rows(vault_log, "token-create-root") and not _rows(vault_log, "token-create-orphan")


def _vault_entries(path: str) -> list[dict]:
    found = [
        json.loads(line)
        for line in VAULT_LOG.read_text().splitlines()
        if f'"path":"{path}"' in line
    ]
    assert found, path
    return found


def _vault_call(entries: list[dict], **changes: object) -> EventRow:
    """The request and response of one real call, changed, parsed as one event."""
    records: list[Record] = []
    for n, entry in enumerate(entries[-2:], 1):
        entry = copy.deepcopy(entry)
        request = entry["request"]
        for key, value in changes.items():
            if key == "new_policies":
                if "response" in entry and entry["type"] == "response":
                    entry["response"]["auth"]["policies"] = value
            elif key == "no_parent":
                request.setdefault("data", {})["no_parent"] = value
            elif key == "data":
                request["data"] = value
            else:
                request[key] = value
        records.append((orjson.dumps(entry), n, n * 1000))
    parser = vault.VaultParser()
    out = parser.feed(records, "t")
    out.extend(parser.flush("t"))
    (row,) = out.rows
    to_event(row)
    return row


def test_vault_audit_device_disabled() -> None:
    row = _vault_call(_vault_entries("sys/audit/file2"), operation="delete")
    assert (row.secret, row.action, row.operation) == (
        "sys/audit/file2",
        "control",
        "audit-disable",
    )
    assert row.note == f"{TAMPER_NOTE}disabled the Vault audit device file2/"


def test_vault_policy_deleted_auth_tuned_raw_and_generate_root() -> None:
    policy = _vault_entries("sys/policies/acl/orders-read")
    row = _vault_call(policy, operation="delete")
    assert (row.operation, row.action) == ("policy-delete", "control")
    row = _vault_call(policy, path="sys/policy/legacy-admin")
    assert (row.secret, row.operation) == ("sys/policy/legacy-admin", "policy-write")
    auth = _vault_entries("sys/auth/userpass")
    row = _vault_call(auth, path="sys/auth/userpass/tune")
    assert (row.secret, row.operation) == ("sys/auth/userpass", "auth-tune")
    assert _vault_call(auth, operation="delete").operation == "auth-disable"
    row = _vault_call(policy, path="sys/raw/sys/policy/admin")
    assert (row.operation, row.action) == ("raw-update", "control")
    row = _vault_call(policy, path="sys/generate-root/attempt")
    assert (row.operation, row.note) == (
        "generate-root-attempt",
        f"{CONTROL_NOTE}attempt of a root token generation",
    )


def test_vault_secrets_engines_enabled_tuned_moved_and_disabled(vault_log: FeedResult) -> None:
    """Disabling a secrets engine deletes every secret in it; enabling, tuning or moving
    one (`sys/remount`: its path leaves the policies that named it) changes what can be
    read where. Before, all four were `other` with no secret, so never judged."""
    enabled = _rows(vault_log, "mount-enable")  # ops 14 and 29 of the real server's log
    assert sorted((r.secret, r.action, r.note) for r in enabled) == [
        ("sys/mounts/kv1", "control", f"{CONTROL_NOTE}enabled the secrets engine kv1"),
        ("sys/mounts/transit", "control", f"{CONTROL_NOTE}enabled the secrets engine transit"),
    ]
    mount = _vault_entries("sys/mounts/kv1")
    row = _vault_call(mount, operation="delete")
    assert (row.secret, row.operation, row.note) == (
        "sys/mounts/kv1",
        "mount-disable",
        f"{CONTROL_NOTE}disabled the secrets engine kv1 (and every secret in it)",
    )
    row = _vault_call(mount, path="sys/mounts/kv1/tune")
    assert (row.secret, row.operation, row.action) == ("sys/mounts/kv1", "mount-tune", "control")
    row = _vault_call(mount, path="sys/remount")
    assert (row.secret, row.operation, row.note) == (
        "sys/remount",
        "mount-move",
        f"{CONTROL_NOTE}moved a secrets engine or auth method to another path",
    )
    assert control_plane.vault("sys/mounts", "read") is None  # listing them
    assert control_plane.vault("sys/mounts/kv1/tune", "read") is None
    assert control_plane.vault("sys/remount/status/abc", "read") is None  # a move's progress


def test_a_tune_that_unhashes_audited_values_is_tampering() -> None:
    """`audit_non_hmac_request_keys` / `audit_non_hmac_response_keys` on a mount or an auth
    method make every audit device log those values in clear: the log itself then holds
    secrets. Only the setting's name is read (its value, the keys, is HMAC'd)."""
    mount = _vault_entries("sys/mounts/kv1")
    row = _vault_call(
        mount,
        path="sys/mounts/kv1/tune",
        data={
            "audit_non_hmac_response_keys": ["hmac-sha256:00"],
            "max_lease_ttl": "hmac-sha256:01",
        },
    )
    assert (row.secret, row.operation, row.action) == ("sys/mounts/kv1", "audit-unhash", "control")
    assert row.note == (
        f"{TAMPER_NOTE}made audit devices log values of the secrets engine kv1 in clear "
        "(audit_non_hmac_response_keys)"
    )
    auth = _vault_entries("sys/auth/userpass")
    row = _vault_call(
        auth, path="sys/auth/userpass/tune", data={"audit_non_hmac_request_keys": ["x"]}
    )
    assert (row.secret, row.operation) == ("sys/auth/userpass", "audit-unhash")
    assert "auth method userpass" in row.note and "(audit_non_hmac_request_keys)" in row.note
    row = _vault_call(mount, path="sys/mounts/kv1/tune", data={"max_lease_ttl": "x"})
    assert row.operation == "mount-tune"  # any other tune


def test_vault_root_and_orphan_tokens() -> None:
    create = _vault_entries("auth/token/create")[:2]  # op 55: a child token, orders-read
    row = _vault_call(create, new_policies=["root"])
    assert (row.secret, row.action, row.operation) == (
        "auth/token/create",
        "control",
        "token-create-root",
    )
    assert row.note == f"{CONTROL_NOTE}created a root token"
    row = _vault_call(create, no_parent=True)
    assert (row.operation, row.note) == (
        "token-create-orphan",
        f"{CONTROL_NOTE}created an orphan token (no parent)",
    )
    row = _vault_call(create, path="auth/token/create-orphan")
    assert (row.secret, row.operation) == ("auth/token/create-orphan", "token-create-orphan")
    assert _vault_call(create).action == "auth"  # unchanged: an ordinary child token


# -- AWS CloudTrail ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def invictus() -> FeedResult:
    total = FeedResult()
    for path in sorted(INVICTUS.glob("*.json")):
        total.extend(feed_file(cloudtrail.SPEC, path))
    return total


def test_stratus_trail_tampering_is_kept(invictus: FeedResult) -> None:
    """Stratus Red Team's cloudtrail-stop, -delete and -event-selectors detonations: the
    calls failed where the trail was already gone (TrailNotFoundException), and count
    all the same: an attempt to blind the log."""
    trail = sorted(
        (r.operation, r.secret.rsplit("/", 1)[-1], r.outcome)
        for r in invictus.rows
        if r.note and TAMPER_NOTE in r.note
    )
    assert trail == [
        ("DeleteTrail", "stratus-red-team-cloudtraild-trail-aueolsaccp", "error"),
        ("DeleteTrail", "stratus-red-team-ctlr-trail-zqfsvooxqj", "success"),
        ("PutEventSelectors", "stratus-red-team-ctes-trail-qyxyekjbtk", "success"),
        ("StopLogging", "stratus-red-team-ct-stop-trail-qzbgnfqisx", "error"),
        ("StopLogging", "stratus-red-team-ct-stop-trail-qzbgnfqisx", "error"),
        ("StopLogging", "stratus-red-team-ct-stop-trail-qzbgnfqisx", "error"),
    ]
    stop = next(r for r in invictus.rows if r.operation == "StopLogging")
    assert (stop.identity, stop.action, stop.secret) == (
        BERT,
        "control",
        f"arn:aws:cloudtrail:us-east-1:{ACCT}:trail/stratus-red-team-ct-stop-trail-qzbgnfqisx",
    )
    assert stop.note.endswith(
        "audit tampering: stopped logging on the CloudTrail trail "
        "stratus-red-team-ct-stop-trail-qzbgnfqisx"
    )


def test_stratus_secret_deletion_without_recovery(invictus: FeedResult) -> None:
    deleted = [r for r in invictus.rows if r.operation == "DeleteSecret"]
    assert len(deleted) == 4
    assert {(r.action, r.identity) for r in deleted} == {("delete", BERT)}
    assert {r.note for r in deleted} == {f"{CONTROL_NOTE}deleted the secret without recovery"}


def _trail_record(**changes: object) -> dict:
    """A real Secrets Manager record of the hour (a DeleteSecret), changed."""
    for path in sorted(INVICTUS.glob("*.json")):
        for record in orjson.loads(path.read_bytes())["Records"]:
            if record["eventName"] == "DeleteSecret":
                record = copy.deepcopy(record)
                record.update(changes)
                return record
    raise AssertionError("no DeleteSecret record")


def test_resource_policy_and_rotation_and_scheduled_deletion() -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123837392027:secret:prod/db-AbCdEf"  # noqa: S105
    (row,) = cloudtrail.parse(
        _trail_record(eventName="PutResourcePolicy", requestParameters={"secretId": secret}), None
    )
    assert (row.action, row.operation, row.secret) == (
        "control",
        "PutResourcePolicy",
        "arn:aws:secretsmanager:us-east-1:123837392027:secret:prod/db",
    )
    assert row.note == f"{CONTROL_NOTE}changed the secret's resource policy"
    (row,) = cloudtrail.parse(
        _trail_record(eventName="DeleteResourcePolicy", requestParameters={"secretId": secret}),
        None,
    )
    assert (row.action, row.note) == (
        "control",
        f"{CONTROL_NOTE}deleted the secret's resource policy",
    )
    (row,) = cloudtrail.parse(
        _trail_record(requestParameters={"secretId": secret, "recoveryWindowInDays": 7}), None
    )
    assert (row.action, row.note) == (
        "delete",
        f"{CONTROL_NOTE}scheduled the deletion of the secret in 7 days",
    )
    rules = {"secretId": secret, "rotationRules": {"automaticallyAfterDays": 1}}
    (row,) = cloudtrail.parse(
        _trail_record(eventName="RotateSecret", requestParameters=rules), None
    )
    assert (row.action, row.note) == ("rotate", f"{CONTROL_NOTE}configured the secret's rotation")
    (row,) = cloudtrail.parse(
        _trail_record(eventName="RotateSecret", requestParameters={"secretId": secret}), None
    )
    assert (row.action, row.note) == ("rotate", None)  # rotating now: no configuration


def test_kms_key_disabled_or_scheduled_for_deletion() -> None:
    key = "arn:aws:kms:us-east-1:123837392027:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for event, what in (
        ("ScheduleKeyDeletion", "scheduled the deletion of the KMS key"),
        ("DisableKey", "disabled the KMS key"),
    ):
        record = _trail_record(
            eventSource="kms.amazonaws.com",
            eventName=event,
            requestParameters={"keyId": key, "pendingWindowInDays": 7},
        )
        (row,) = cloudtrail.parse(record, None)
        assert (row.action, row.operation, row.secret, row.note) == (
            "control",
            event,
            key,
            CONTROL_NOTE + what,
        )
    other = _trail_record(eventSource="kms.amazonaws.com", eventName="ListAliases")
    with pytest.raises(NotSecretAccess, match="kms.amazonaws.com call other than Decrypt"):
        cloudtrail.parse(other, None)
    describe = _trail_record(eventSource="cloudtrail.amazonaws.com", eventName="DescribeTrails")
    with pytest.raises(NotSecretAccess, match=r"not a secrets API \(cloudtrail"):
        cloudtrail.parse(describe, None)


# -- Google Cloud --------------------------------------------------------------------------


def _gcp(method: str, resource: str, service: str = gcp.SERVICE, **payload: object) -> dict:
    doc = orjson.loads(GCP_SAMPLE.read_bytes())
    proto = doc["protoPayload"]
    proto.update(serviceName=service, methodName=method, resourceName=resource, **payload)
    return doc


def test_gcp_secret_iam_policy_and_versions() -> None:
    secret = "projects/victim-project/secrets/db"  # noqa: S105
    method = "google.cloud.secretmanager.v1.SecretManagerService."
    (row,) = gcp.parse(_gcp(method + "SetIamPolicy", secret), None)
    assert (row.secret, row.action, row.operation) == (secret, "control", "SetIamPolicy")
    assert row.note.endswith(f"{CONTROL_NOTE}changed the IAM policy of the secret {secret}")
    (row,) = gcp.parse(_gcp(method + "DestroySecretVersion", secret + "/versions/3"), None)
    assert (row.secret, row.action, row.operation) == (secret, "delete", "DestroySecretVersion")
    (row,) = gcp.parse(_gcp(method + "DisableSecretVersion", secret + "/versions/3"), None)
    assert (row.action, row.operation) == ("write", "DisableSecretVersion")
    (row,) = gcp.parse(_gcp(method + "AccessSecretVersion", secret + "/versions/3"), None)
    assert row.note is None or CONTROL_NOTE not in row.note


def test_gcp_audit_config_change_is_tampering() -> None:
    delta = {"policyDelta": {"auditConfigDeltas": [{"action": "REMOVE", "service": "allServices"}]}}
    doc = _gcp(
        "SetIamPolicy",
        "projects/victim-project",
        "cloudresourcemanager.googleapis.com",
        serviceData=delta,
    )
    (row,) = gcp.parse(doc, None)
    assert (row.secret, row.action, row.operation) == (
        "projects/victim-project",
        "control",
        "SetIamPolicy:auditConfigs",
    )
    assert row.note.endswith(f"{TAMPER_NOTE}changed the audit config of projects/victim-project")
    bindings = _gcp(
        "SetIamPolicy", "projects/victim-project", "cloudresourcemanager.googleapis.com"
    )
    with pytest.raises(NotSecretAccess, match="not Secret Manager"):
        gcp.parse(bindings, None)  # a project's IAM bindings alone: not about secrets


# -- Azure ---------------------------------------------------------------------------------


def test_azure_secret_purge_is_a_marked_delete() -> None:
    result = feed_file(azure.SPEC, AZURE / "secretpurge_deleted.json")
    (row,) = result.rows
    assert (row.action, row.operation) == ("delete", "SecretPurge")
    assert row.note == f"{CONTROL_NOTE}purged the secret {row.secret}"


def _azure_vault_record(operation: str, inner: dict) -> dict:
    doc = orjson.loads((AZURE / "secretpurge_deleted.json").read_bytes())
    doc["operationName"] = operation
    doc["properties"] = {
        "id": "https://kv-prod.vault.azure.net/",
        "requestUri": "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/"
        "Microsoft.KeyVault/vaults/kv-prod?api-version=2023-07-01",
        "httpStatusCode": 200,
        "properties": inner,
    }
    return doc


def test_azure_access_policy_and_network_rule_changes() -> None:
    doc = _azure_vault_record("VaultPatch", {"accessPolicies": [{"objectId": "x"}]})
    (row,) = azure.parse(doc, None)
    vault_name = row.backend
    assert (row.secret, row.action, row.operation) == (
        f"{vault_name}/",
        "control",
        "VaultPatch:accessPolicies",
    )
    doc = _azure_vault_record("VaultPatch", {"networkAcls": {"defaultAction": "Allow"}})
    (row,) = azure.parse(doc, None)
    assert row.operation == "VaultPatch:networkAcls"
    doc = _azure_vault_record("VaultPatch", {"tags": {"team": "x"}})
    (row,) = azure.parse(doc, None)
    assert (row.action, row.operation) == ("other", "VaultPatch")  # tags: not access


def _activity(operation: str) -> dict:
    return {
        "eventTimestamp": "2026-03-02T09:30:00.1234567Z",
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "operationName": {"value": operation, "localizedValue": "Delete diagnostic setting"},
        "resourceId": "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/"
        "KV-PROD/PROVIDERS/MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/TO-SENTINEL",
        "caller": "mallory@contoso.example",
        "callerIpAddress": "203.0.113.66",
        "correlationId": "c0ffee00-0000-4000-8000-00000000d1a9",
        "eventDataId": "e0000000-0000-4000-8000-00000000d1a9",
        "status": {"value": "Succeeded"},
        "claims": {
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "mallory@contoso.example"
        },
    }


def test_azure_diagnostic_settings_removed_is_tampering() -> None:
    (row,) = azure.parse(_activity("MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/DELETE"), None)
    to_event(row)
    assert (row.identity, row.secret, row.action, row.operation, row.outcome) == (
        "mallory@contoso.example",
        "kv-prod/diagnosticSettings",
        "control",
        "diagnosticSettings-delete",
        "success",
    )
    assert (row.event_id, row.source_ip) == ("e0000000-0000-4000-8000-00000000d1a9", "203.0.113.66")
    assert row.note == f"{TAMPER_NOTE}removed diagnostic settings of kv-prod"
    with pytest.raises(ParseError, match="Azure Activity Log record"):
        azure.parse(_activity("MICROSOFT.KEYVAULT/VAULTS/WRITE"), None)  # as before


# -- Kubernetes ----------------------------------------------------------------------------


def _k8s(name: str, **changes: object) -> dict:
    doc = orjson.loads((FALCO / name).read_bytes())
    doc.update(changes)
    return doc


def test_k8s_namespaced_role_granting_secrets() -> None:
    doc = _k8s("create_cluster_role_wildcard_resources.json")
    doc["objectRef"] = {**doc["objectRef"], "resource": "roles", "namespace": "payments"}
    doc["requestObject"]["rules"] = [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"]}
    ]
    (row,) = k8s.parse(doc, None)
    assert (row.secret, row.operation, row.action) == (
        "rbac/payments/some-reader",
        "rbac-grant-secrets",
        "control",
    )
    assert row.note == f"{CONTROL_NOTE}wrote the role some-reader, granting read on secrets"


def test_k8s_binding_names_its_role_and_metadata_level_roles_are_kept() -> None:
    (row,) = k8s.parse(_k8s("attach_cluster_admin_role.json"), None)
    assert row.note == (
        f"{CONTROL_NOTE}bound ClusterRole cluster-admin with the clusterrolebinding "
        "some-reader-binding"
    )
    doc = _k8s("create_clusterrole.json", level="Metadata")
    del doc["requestObject"], doc["responseObject"]
    (row,) = k8s.parse(doc, None)
    assert row.operation == "rbac-role-write"  # rules not logged: cannot tell, kept
    with pytest.raises(NotSecretAccess, match="grants nothing on secrets"):
        k8s.parse(_k8s("create_clusterrole.json"), None)  # pods only
    get = _k8s("create_clusterrole.json", verb="get")
    with pytest.raises(NotSecretAccess, match="grants nothing on secrets"):
        k8s.parse(get, None)  # reading a role changes nothing


def test_rules_granting_secrets() -> None:
    grants = control_plane.grants_secrets
    assert grants([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])
    assert not grants([{"apiGroups": ["apps"], "resources": ["secrets"], "verbs": ["get"]}])
    assert not grants([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}])
    assert not grants("not rules") and not grants([{"apiGroups": [""], "resources": "secrets"}])
