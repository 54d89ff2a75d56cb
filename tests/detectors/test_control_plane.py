"""The control_plane detector: a kind of control-plane change new for the identity is a
finding (high for grants), tampering with audit is critical whatever the history; and a
replay on real-shaped Vault audit lines (the Vault 1.21.4 dev server's own entries, moved in
time and given other callers) over weeks of history."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import orjson
import pandas as pd
import pytest
from judge import judge
from world import START, TRAIN_DAYS, after, row, us, world

from detectors.alert import Finding
from detectors.baseline import FORMAT, Baselines
from detectors.engine import Detection
from detectors.settings import DetectorsConfig
from pipeline.detection.replay import load_events, replay
from pipeline.record import CONTROL_NOTE, PROVISIONAL_NOTE, TAMPER_NOTE, EventRow
from pipeline.sources import vault
from pipeline.store.rows import rows_to_arrow

BERT = "arn:aws:iam::123837392027:user/bert-jan"
VAULT_LOG = (
    Path(__file__).resolve().parents[1] / "fixtures" / "vault" / "vault-1.21.4-dev" / "audit.log"
)


def control(
    ident: str,
    hours: float,
    operation: str,
    secret: str,
    what: str,
    tamper: bool = False,
    outcome: str = "success",
    action: str = "control",
) -> EventRow:
    note = (TAMPER_NOTE if tamper else CONTROL_NOTE) + what
    base = row(ident, after(hours), secret, action, outcome)
    return base._replace(operation=operation, note=note, event_id=f"{ident}-{operation}-{hours}")


def test_a_first_policy_write_is_a_high_finding_naming_the_policy(trained):
    event = control(
        "orders/orders-api",
        3,
        "policy-write",
        "sys/policies/acl/app-read",
        "wrote the ACL policy app-read",
    )
    [finding] = judge("control_plane", trained, [event])
    assert (finding.severity, finding.identity, finding.evidence) == (
        "high",
        "orders/orders-api",
        (event.event_id,),
    )
    assert finding.explanation.startswith("wrote the ACL policy app-read at 03:00 on")
    assert finding.explanation.endswith(
        "which it had never done (it had made no control-plane change before)."
    )


def test_other_new_kinds_are_medium_and_unknown_identities_say_so(trained):
    tune = control("alice", 10, "auth-tune", "sys/auth/userpass", "tuned the auth method userpass")
    [finding] = judge("control_plane", trained, [tune])
    assert finding.severity == "medium"
    stranger = control("ci-new", 10, "auth-enable", "sys/auth/jwt", "enabled the auth method jwt")
    [finding] = judge("control_plane", trained, [stranger])
    assert "an identity with no history here" in finding.explanation


def test_audit_tampering_is_critical_whatever_the_history(trained):
    disable = control(
        "alice",
        10,
        "audit-disable",
        "sys/audit/file",
        "disabled the Vault audit device file/",
        True,
    )
    trained.controls[trained.index["alice"]].add("audit-disable")  # even if done before
    [finding] = judge("control_plane", trained, [disable])
    assert finding.severity == "critical"
    assert finding.explanation.startswith("disabled the Vault audit device file/ at 10:00")
    assert "tampering with audit itself is critical" in finding.explanation
    denied = control(
        "alice",
        11,
        "StopLogging",
        "arn:aws:cloudtrail:r:1:trail/t",
        "stopped logging",
        True,
        "error",
    )
    [finding] = judge("control_plane", trained, [denied])  # an attempt counts
    assert finding.severity == "critical" and "(error)" in finding.explanation


def test_a_known_kind_of_change_is_routine(trained):
    r = trained.index["alice"]
    trained.controls[r].add("policy-write")
    write = control("alice", 10, "policy-write", "sys/policies/acl/x", "wrote the ACL policy x")
    assert judge("control_plane", trained, [write]) == []
    other = control("alice", 11, "policy-delete", "sys/policies/acl/x", "deleted the ACL policy x")
    [finding] = judge("control_plane", trained, [write, other])
    assert finding.evidence == (other.event_id,)  # only the new kind is evidence
    assert finding.explanation.endswith(
        "which it had never done (no policy-delete before; its changes so far: policy-write)."
    )


def test_marked_deletes_are_judged_and_plain_access_is_not(trained):
    delete = control(
        "payments/payments-api",
        4,
        "DeleteSecret",
        "arn:aws:secretsmanager:r:1:secret:db",
        "deleted the secret without recovery",
        action="delete",
    )
    [finding] = judge("control_plane", trained, [delete])
    assert finding.severity == "medium"
    assert finding.explanation.startswith(
        "deleted the secret without recovery (arn:aws:secretsmanager:r:1:secret:db) at 04:00"
    )
    assert judge("control_plane", trained, [row("alice", after(10), action="delete")]) == []


def test_severities_come_from_config(trained):
    event = control("alice", 10, "auth-enable", "sys/auth/jwt", "enabled the auth method jwt")
    [finding] = judge("control_plane", trained, [event], severity="low")
    assert finding.severity == "low"


def test_control_history_round_trips_and_the_format_is_versioned(trained):
    r = trained.index["alice"]
    trained.controls[r].update({"policy-write", "rbac-bind"})
    copy_ = Baselines.from_rows(trained.to_rows(), **trained.meta())
    assert copy_.controls[copy_.index["alice"]] == {"policy-write", "rbac-bind"}
    name, body = trained.to_rows(["alice"])[0]
    old = orjson.loads(body)
    assert old["format"] == FORMAT == 5
    old["format"] = 4
    del old["controls"]
    with pytest.raises(ValueError, match="format 4, expected 5; run `secretwatch train` again"):
        Baselines.from_rows([(name, orjson.dumps(old))], **trained.meta())


# -- replay on real-shaped Vault lines ----------------------------------------------------


def _template(path: str) -> list[dict]:
    lines = [json.loads(x) for x in VAULT_LOG.read_text().splitlines() if f'"path":"{path}"' in x]
    return [e for e in lines if e["type"] == "response"][:1]


def _vault_rows_auth(caller: str, n: int) -> dict[str, object]:
    """The auth block of the AppRole `vault-admin` or of orders/orders-api (token `n`)."""
    meta = (
        {"role_name": "vault-admin"}
        if caller == "vault-admin"
        else {"service_account_name": "orders-api", "service_account_namespace": "orders"}
    )
    return {
        "accessor": f"hmac-sha256:{n:064x}",
        "display_name": "approle" if caller == "vault-admin" else "kubernetes-orders-api",
        "policies": ["default", "admin"],
        "metadata": meta,
    }


def _vault_rows(calls: list[tuple[str, str, str, object]]) -> list[EventRow]:
    """(template path, path, operation, when) -> events, through the Vault parser: the real
    response entry of the template call, at `when`, by the AppRole `vault-admin` or the
    Kubernetes service account orders/orders-api (named by the template's caller)."""
    records = []
    for n, (template, caller, operation, when) in enumerate(calls, 1):
        entry = copy.deepcopy(_template(template)[0])
        entry["time"] = pd.Timestamp(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry["request"]["id"] = f"00000000-0000-4000-8000-{n:012d}"
        entry["request"]["operation"] = operation
        entry["auth"] = _vault_rows_auth(caller, n)
        records.append((orjson.dumps(entry), n, n * 1000))
    parser = vault.VaultParser()
    out = parser.feed(records, "replay")
    out.extend(parser.flush("replay"))
    return out.rows


def _weekly(template: str, caller: str, operation: str, hour: int) -> list[tuple]:
    """`_vault_rows` calls: the same call at `hour` on the first day of each training week."""
    return [
        (template, caller, operation, START + timedelta(days=d, hours=hour))
        for d in range(0, TRAIN_DAYS, 7)
    ]


def _replayed(control_rows: list[EventRow]) -> tuple[Detection, list[Finding]]:
    """The test world's history and next day with `control_rows` among it, replayed: the
    detection, and its control_plane findings after the history."""
    rows = world(TRAIN_DAYS + 1) + control_rows
    events = rows_to_arrow(sorted(rows, key=lambda r: (r.ts_us, r.event_id))).to_pandas()
    events = events.sort_values(["ts", "event_id"], kind="stable", ignore_index=True)
    detection = replay(events, us(after(0)), DetectorsConfig())
    found = [f for i in detection.incidents() for f in i.findings if f.detector == "control_plane"]
    return detection, found


def test_replay_audit_disable_alerts_and_weekly_policy_writes_do_not():
    """Eight weeks of history (the test world, plus a weekly ACL policy write by the AppRole
    vault-admin), no control-plane change by orders/orders-api; then orders-api disables
    the audit device and vault-admin writes its weekly policy."""
    weekly = _weekly("sys/policies/acl/orders-read", "vault-admin", "update", 11)
    attack = [
        ("sys/audit/file2", "orders/orders-api", "delete", after(3)),
        ("sys/policies/acl/orders-read", "vault-admin", "update", after(11)),
    ]
    control_rows = _vault_rows([*weekly, *attack])
    assert [r.operation for r in control_rows[-2:]] == ["audit-disable", "policy-write"]
    assert {r.identity for r in control_rows} == {"vault-admin", "orders/orders-api"}
    detection, [finding] = _replayed(control_rows)
    assert (finding.identity, finding.severity) == ("orders/orders-api", "critical")
    assert finding.evidence == (control_rows[-2].event_id,)
    assert finding.explanation.startswith(
        "disabled the Vault audit device file2/ at 03:00 on Monday 2026-04-27"
    )
    admin = detection.base.controls[detection.base.index["vault-admin"]]
    assert admin == {"policy-write"}  # learned in training, and kept


def test_replay_a_secrets_engine_disabled_alerts_and_weekly_mounts_do_not():
    """vault-admin enables a secrets engine every week of the history; orders-api never
    touched one. Then orders-api disables the KV engine (every secret in it goes) and
    vault-admin enables its weekly one. Before, both were `other`: nothing was raised."""
    weekly = _weekly("sys/mounts/kv1", "vault-admin", "update", 9)
    attack = [
        ("sys/mounts/kv1", "orders/orders-api", "delete", after(4)),
        ("sys/mounts/kv1", "vault-admin", "update", after(9)),
    ]
    control_rows = _vault_rows([*weekly, *attack])
    assert [r.operation for r in control_rows[-2:]] == ["mount-disable", "mount-enable"]
    _, [finding] = _replayed(control_rows)
    assert (finding.identity, finding.severity) == ("orders/orders-api", "medium")
    assert finding.evidence == (control_rows[-2].event_id,)
    assert finding.explanation.startswith(
        "disabled the secrets engine kv1 (and every secret in it) at 04:00 on Monday"
    )


def test_replay_an_audit_device_disabled_with_no_response_logged_is_critical():
    """Disabling the audit device secretwatch reads from leaves only the request in that
    log: Vault writes the response to the devices still enabled. That request counts
    alone, provisional, and before its note was only the provisional one: the tampering
    mark was dropped, so the attempt was an ordinary control change (medium, or nothing
    for an identity that had disabled a device before)."""
    rows = _vault_rows(_weekly("sys/audit/file2", "orders/orders-api", "delete", 8))
    request = copy.deepcopy(
        next(
            json.loads(x)
            for x in VAULT_LOG.read_text().splitlines()
            if '"path":"sys/audit/file2"' in x and '"type":"request"' in x
        )
    )
    request["time"] = pd.Timestamp(after(5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    request["request"]["operation"] = "delete"
    request["request"]["path"] = "sys/audit/socket"
    request["auth"] = _vault_rows_auth("orders/orders-api", 99)
    parser = vault.VaultParser()
    parser.feed([(orjson.dumps(request), 1, 0)], "replay")
    [lone] = parser.flush("replay").rows  # never answered in this log
    assert lone.note.startswith(PROVISIONAL_NOTE) and TAMPER_NOTE in lone.note
    _, [finding] = _replayed([*rows, lone])
    assert (finding.identity, finding.severity) == ("orders/orders-api", "critical")
    assert finding.evidence == (lone.event_id,)
    assert finding.explanation.startswith("disabled the Vault audit device socket/ at 05:00")


def test_replay_of_the_stratus_hour_names_the_trail_tampering():
    """The real CloudTrail hour of Stratus Red Team detonations (invictus-ir): the trail
    stopped, deleted and its event selectors changed, and secrets deleted without
    recovery, by an IAM user with no history: critical, every such call in evidence."""
    folder = Path(__file__).resolve().parents[1] / "fixtures" / "aws_cloudtrail"
    events, _, _ = load_events([str(folder / "invictus-ir__aws_dataset")])
    marked = events[events["note"].fillna("").str.contains("control-plane: |audit tampering: ")]
    assert len(marked) == 10  # 6 trail calls, 4 DeleteSecret
    cut = us(pd.Timestamp("2023-07-10T11:00:00Z").to_pydatetime())
    detection = replay(events, cut, DetectorsConfig())
    found = [f for i in detection.incidents() for f in i.findings if f.detector == "control_plane"]
    assert {(f.identity, f.severity) for f in found} == {(BERT, "critical")}
    assert {e for f in found for e in f.evidence} == set(marked["event_id"])
    said = " ".join(f.explanation for f in found)
    assert "stopped logging on the CloudTrail trail stratus-red-team-ct-stop-trail" in said
    assert "deleted the CloudTrail trail stratus-red-team-ctlr-trail-zqfsvooxqj" in said
    assert "deleted the secret without recovery (arn:aws:secretsmanager:" in said
