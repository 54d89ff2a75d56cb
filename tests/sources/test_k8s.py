"""Kubernetes audit source against falco's captured events and generated service-account
access (get/list/watch, 401/403, impersonation, RequestResponse with Secret data)."""

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
from pipeline.sources import k8s
from pipeline.sources.base import FeedResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s_audit"
FALCO = FIXTURES / "falcosecurity__falco"
OWN = FIXTURES / "secretwatch__generated"
SECRET_FILES = {
    "create_secret.json",
    "delete_secret.json",
    "create_service_account_token_secret.json",
    "create_kube_system_secret.json",
}
PAYMENTS_DB = "payments/db-credentials"
SA = "payments/payments-api"
EXAMPLE = "default/example-secret"


def feed(path: Path, backend: str | None = None) -> FeedResult:
    return feed_file(k8s.SPEC, path, backend)


def one(path: Path) -> EventRow:
    result = feed(path)
    (row,) = result.rows
    return row


def by_id(result: FeedResult, audit_id: str) -> EventRow:
    (row,) = [r for r in result.rows if r.event_id == audit_id]
    return row


@pytest.fixture(scope="module")
def generated() -> FeedResult:
    return feed(OWN / "service_account_access.jsonl")


def test_create_secret_by_user() -> None:
    assert one(FALCO / "create_secret.json") == EventRow(
        event_id="55a81824-ab56-46c5-8b02-96336f5e78d7",
        ts_us=to_micros("2020-04-21T17:57:05.548299Z"),
        source="k8s",
        backend="kubernetes",
        identity="minikube-user",
        identity_kind="human",
        secret=EXAMPLE,
        action="write",
        operation="create",
        outcome="success",
        source_ip="192.168.64.1",
        user_agent="kubectl/v1.17.3 (darwin/amd64) kubernetes/06ad960",
        request_id="55a81824-ab56-46c5-8b02-96336f5e78d7",
        error=None,
        note=None,
    )


def test_delete_secret() -> None:
    row = one(FALCO / "delete_secret.json")
    assert (row.identity, row.action, row.operation, row.outcome) == (
        "minikube-user",
        "delete",
        "delete",
        "success",
    )
    assert row.note == "control-plane: deleted the secret default/example-secret"
    assert (row.secret, row.event_id) == (
        EXAMPLE,
        "d1df3fa9-497f-49cf-bd48-60a651df8075",
    )


def test_token_secret_created_by_controller_manager() -> None:
    row = one(FALCO / "create_service_account_token_secret.json")
    assert (row.identity, row.identity_kind) == ("system:kube-controller-manager", "service")
    assert (row.secret, row.action) == ("test2/default-token-7v4pb", "write")
    assert row.user_agent == (
        "kube-controller-manager/v1.17.3 (linux/amd64) kubernetes/06ad960/tokens-controller"
    )


def test_kube_system_bootstrap_token_secret() -> None:
    row = one(FALCO / "create_kube_system_secret.json")
    assert (row.identity, row.identity_kind, row.secret) == (
        "admin",
        "human",
        "kube-system/bootstrap-token-ne7bxu",
    )
    assert (row.source_ip, row.backend) == ("127.0.0.1", "kubernetes")


def test_malformed_falco_record_is_dead_lettered() -> None:
    result = feed(FALCO / "fal_01_003.json")
    assert (result.rows, result.dead_records) == ([], 1)
    assert result.dead[0].reason == "k8s `kind` is 0, expected 'Event'"


# RBAC changes are control-plane events when they can grant reading secrets: a role whose
# rules do, any binding (its role's rules are not in the record: the roleRef is kept).
# Roles granting nothing on secrets, and deletes (they take access away), are skipped.
RBAC_EVENTS = {
    "attach_cluster_admin_role.json": ("rbac/*/some-reader-binding", "rbac-bind"),
    "create_clusterrolebinding.json": ("rbac/*/some-reader-binding", "rbac-bind"),
    "create_cluster_role_wildcard_resources.json": ("rbac/*/some-reader", "rbac-grant-secrets"),
}
RBAC_SKIPPED = {
    "create_cluster_role_pod_exec.json",
    "create_cluster_role_wildcard_verbs.json",  # `*` on pods only
    "create_cluster_role_write_privileges.json",
    "create_clusterrole.json",
    "modify_cluster_role_node_problem_detector.json",
    "delete_cluster_role_kube_aggregator.json",
    "delete_clusterrole.json",
    "delete_clusterrolebinding.json",
}
NO_GRANT = "k8s: RBAC change that grants nothing on secrets"


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in FALCO.glob("*.json")
        if p.name not in SECRET_FILES | RBAC_EVENTS.keys() | {"fal_01_003.json"}
    ),
)
def test_other_falco_events_are_skipped(name: str) -> None:
    result = feed(FALCO / name)
    assert (result.rows, result.dead) == ([], [])
    reason = NO_GRANT if name in RBAC_SKIPPED else "k8s: not a secrets resource"
    assert set(result.skipped) == {reason}
    assert result.skipped_records == result.accounted >= 1


@pytest.mark.parametrize("name", sorted(RBAC_EVENTS))
def test_rbac_grants_are_control_events(name: str) -> None:
    row = one(FALCO / name)
    assert (row.secret, row.operation, row.action) == (*RBAC_EVENTS[name], "control")
    assert row.identity == "minikube-user" and row.note.startswith("control-plane: ")


def test_every_falco_file_accounted() -> None:
    total = FeedResult()
    for path in sorted(FALCO.glob("*.json")):
        total.extend(feed(path))
    skipped = total.skipped["k8s: not a secrets resource"], total.skipped[NO_GRANT]
    assert (len(total.rows), total.dead_records, *skipped) == (7, 1, 36, 8)
    assert total.skipped_records + total.dead_records + total.consumed == total.accounted


def test_service_account_reads_lists_and_watches(generated: FeedResult) -> None:
    get = by_id(generated, "a0000000-0000-4000-8000-000000000001")
    assert (get.identity, get.identity_kind, get.secret, get.action) == (
        SA,
        "service",
        PAYMENTS_DB,
        "read",
    )
    listed = by_id(generated, "a0000000-0000-4000-8000-000000000002")
    assert (listed.identity, listed.secret, listed.action) == (SA, "payments/", "list")
    watch = by_id(generated, "a0000000-0000-4000-8000-000000000003")
    assert (watch.identity, watch.secret, watch.action, watch.operation) == (
        "monitoring/prometheus",
        "*/",
        "list",
        "watch",
    )
    assert {get.outcome, listed.outcome, watch.outcome} == {"success"}


def test_forbidden_service_account(generated: FeedResult) -> None:
    row = by_id(generated, "a0000000-0000-4000-8000-000000000004")
    assert (row.identity, row.identity_kind, row.outcome, row.secret) == (
        "default/default",
        "service",
        "denied",
        PAYMENTS_DB,
    )
    assert row.error == (
        '403 Forbidden: secrets "…" is forbidden: User "…" cannot get resource "…" in API '
        'group "" in the namespace "…"'  # quoted names are not stored (issue 14 item 6)
    )
    cluster = by_id(generated, "a0000000-0000-4000-8000-000000000005")
    assert (cluster.secret, cluster.action, cluster.outcome) == ("*/", "list", "denied")


def test_anonymous_unauthorized(generated: FeedResult) -> None:
    row = by_id(generated, "a0000000-0000-4000-8000-000000000007")
    assert (row.identity, row.identity_kind, row.outcome, row.error) == (
        "system:anonymous",
        "unknown",
        "denied",
        "401 Unauthorized: Unauthorized",
    )


def test_request_received_stage_is_skipped(generated: FeedResult) -> None:
    reason = "k8s: RequestReceived stage (the ResponseComplete event carries the outcome)"
    assert dict(generated.skipped) == {reason: 1}
    assert (generated.consumed, generated.skipped_records, generated.dead_records) == (7, 1, 0)


def test_impersonation_names_the_impersonated_user(generated: FeedResult) -> None:
    row = by_id(generated, "a0000000-0000-4000-8000-000000000008")
    assert (row.identity, row.identity_kind, row.note) == (
        SA,
        "service",
        "impersonated by alice@example.com",
    )


def test_request_response_secret_data_never_enters_a_row() -> None:
    path = OWN / "request_response_secret_create.json"
    assert b"c3VwZXJzZWNyZXQ=" in path.read_bytes()  # the fixture does carry the value
    row = one(path)
    assert (row.identity, row.secret, row.action, row.outcome) == (
        "alice@example.com",
        "payments/api-token",
        "write",
        "success",
    )
    for value in row:
        assert "c3VwZXJzZWNyZXQ=" not in str(value)
        assert "supersecret" not in str(value)


def _doc(name: str = "create_secret.json") -> dict:
    return orjson.loads((FALCO / name).read_bytes())


def test_timestamp_fallbacks_and_backend() -> None:
    doc = _doc()
    del doc["stageTimestamp"], doc["requestReceivedTimestamp"]
    doc["metadata"] = {"creationTimestamp": "2020-04-21T17:57:05Z"}
    (row,) = k8s.parse(doc, "prod-cluster")
    assert (row.ts_us, row.backend) == (to_micros("2020-04-21T17:57:05Z"), "prod-cluster")
    assert row.note == "no stageTimestamp; used metadata.creationTimestamp"
    (row,) = k8s.parse(
        {**_doc(), "stageTimestamp": None, "timestamp": "2020-04-21T17:57:06Z"}, None
    )
    assert (row.ts_us, row.note) == (
        to_micros("2020-04-21T17:57:05.541358Z"),
        "no stageTimestamp; used requestReceivedTimestamp",
    )


def test_panic_and_missing_audit_id() -> None:
    (row,) = k8s.parse({**_doc(), "stage": "Panic", "auditID": None}, None)
    assert (row.outcome, row.request_id) == ("error", None)
    assert row.event_id.startswith("k8s:sha256:")
    assert row.note == "no auditID; id derived from record fields"


def test_looks_like() -> None:
    assert k8s.looks_like(_doc())
    assert k8s.looks_like(_doc("create_configmap.json"))  # no apiVersion: still an audit event
    for other in (
        {"kind": "Event", "apiVersion": "v1", "involvedObject": {"kind": "Pod"}},
        {"kind": 0},
        {"kind": "Event", "apiVersion": 5},
        {"category": "AuditEvent", "operationName": "SecretGet"},
        {},
    ):
        assert not k8s.looks_like(other), other


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kind": "EventList"}, "k8s `kind` is 'EventList', expected 'Event'"),
        ({"apiVersion": "v1"}, "k8s `apiVersion` is 'v1', not an audit.k8s.io Event"),
        ({"verb": None}, "k8s audit event has no `verb`"),
        ({"objectRef": "secrets"}, "`objectRef` must be an object, got str"),
        ({"user": {"username": ["x"]}}, "k8s `user.username` must be a string, got list"),
        ({"stageTimestamp": 1587491825}, "timestamp must be a string, got int"),
        ({"responseStatus": {"code": "403"}}, "k8s `responseStatus.code` must be an integer"),
    ],
)
def test_malformed_events_name_the_field(change: dict, reason: str) -> None:
    with pytest.raises(ParseError, match=re.escape(reason)):
        k8s.parse({**_doc(), **change}, None)


def test_secrets_of_other_api_groups_are_not_core_secrets() -> None:
    doc = _doc()
    doc["objectRef"] = {**doc["objectRef"], "apiGroup": "example.com"}
    with pytest.raises(NotSecretAccess, match=r"^k8s: not a secrets resource$"):
        k8s.parse(doc, None)


SEEDS = [_doc(name) for name in sorted(SECRET_FILES)] + [
    orjson.loads(line) for line in (OWN / "service_account_access.jsonl").read_bytes().splitlines()
]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_events_fail_cleanly(data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(SEEDS))
    path = data.draw(st.sampled_from(paths(doc)))
    try:
        rows = k8s.parse(mutate(doc, path, data.draw(st.just(DELETE) | JSON_VALUES)), None)
    except (ParseError, NotSecretAccess):
        return
    for row in rows:
        to_event(row)


def test_response_status_message_values_are_not_stored() -> None:
    """Issue 14 item 6: the apiserver quotes invalid values in `responseStatus.message`."""
    line = (OWN / "service_account_access.jsonl").read_bytes().splitlines()[3]
    doc = orjson.loads(line)
    doc["responseStatus"] = {
        "code": 422,
        "reason": "Invalid",
        "message": 'Secret "db" is invalid: data[password]: Invalid value: "CANARY-k8s": bad',
    }
    (row,) = k8s.parse(doc, None)
    assert (
        row.error == '422 Invalid: Secret "…" is invalid: data[password]: Invalid value: "…": bad'
    )


def test_a_started_watch_is_provisional_until_its_completion_replaces_it(tmp_path: Path) -> None:
    """A watch on secrets is logged at ResponseStarted and again, with the same auditID,
    at ResponseComplete when it ends (up to an hour later). The started record is stored
    provisionally and the completed one replaces it: one event, the final outcome."""
    from pipeline.record import PROVISIONAL_NOTE
    from pipeline.store.duckdb import DuckDBStore

    doc = {**_doc(), "verb": "watch", "stage": "ResponseStarted"}
    doc["stageTimestamp"] = "2020-04-21T17:57:06Z"
    (started,) = k8s.parse(doc, None)
    assert started.note == PROVISIONAL_NOTE
    doc = {**doc, "stage": "ResponseComplete", "stageTimestamp": "2020-04-21T18:40:06Z"}
    doc["responseStatus"] = {"code": 403}
    (complete,) = k8s.parse(doc, None)
    assert complete.note is None
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write_batch([started])
        store.write_batch([complete])
        frame = store.events()
    assert list(frame["event_id"]) == [started.event_id]
    assert (frame["outcome"][0], frame["ts"][0].minute) == (complete.outcome, 40)
