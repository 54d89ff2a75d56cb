"""Control-plane and tampering operations, per backend: calls that change who can read
secrets, or whether anyone can see that they were read.

Each parser asks here whether a call is one, and gets a `Change`: the secret (what was
changed: `sys/policies/acl/app-read`, a secret's ARN, a trail, `rbac/<ns>/<role>`), the
action (`control` for calls that were not access before; a deletion or a rotation keeps its
own action, which reports and the other detectors rely on), the operation named precisely
(`policy-write`, `StopLogging`, `VaultPatch:accessPolicies`), and a note that starts with
`CONTROL_NOTE` or, for tampering with audit itself, `TAMPER_NOTE`. The `control_plane`
detector finds these events by that note, whatever their action.

Tables are plain dicts so the parsers stay small; only names and flags are read, never a
value (Vault request data is HMAC'd; policy bodies and Kubernetes objects are not kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.record import CONTROL_NOTE, TAMPER_NOTE


@dataclass(frozen=True)
class Change:
    """A control-plane call, normalized: what the parser writes into the row."""

    secret: str | None
    action: str
    operation: str
    note: str

    @property
    def tamper(self) -> bool:
        return self.note.startswith(TAMPER_NOTE)


def _change(secret: str | None, operation: str, what: str, action: str = "control") -> Change:
    return Change(secret, action, operation, CONTROL_NOTE + what)


def _tamper(secret: str | None, operation: str, what: str, action: str = "control") -> Change:
    return Change(secret, action, operation, TAMPER_NOTE + what)


# -- Vault / OpenBao ----------------------------------------------------------------------

_WRITES = ("create", "update", "patch")
# sys/<prefix>: (operation on write, operation on delete, what it is)
_VAULT_SYS = {
    "sys/policy/": ("policy-write", "policy-delete", "ACL policy"),
    "sys/policies/acl/": ("policy-write", "policy-delete", "ACL policy"),
    "sys/policies/rgp/": ("policy-write", "policy-delete", "Sentinel policy"),
    "sys/policies/egp/": ("policy-write", "policy-delete", "Sentinel policy"),
    "sys/auth/": ("auth-enable", "auth-disable", "auth method"),
    "sys/mounts/": ("mount-enable", "mount-disable", "secrets engine"),
}
_MOUNTED = {"sys/auth/": "auth", "sys/mounts/": "mount"}  # enabled and disabled, and tuned
_TOKEN_CREATE = ("auth/token/create", "auth/token/create-orphan")


@lru_cache(maxsize=4096)
def vault(path: str, op: str) -> Change | None:
    """The control-plane change a Vault call makes, judged by path and operation alone;
    None for anything else (token creation needs the response: `vault_token`).

    >>> vault("sys/audit/file", "delete").operation, vault("sys/audit/file", "delete").tamper
    ('audit-disable', True)
    >>> vault("sys/policies/acl/app-read", "update").operation
    'policy-write'
    >>> vault("sys/policies/acl/app-read", "read") is None
    True
    """
    if path.startswith("sys/audit/") and path != "sys/audit/test":
        name = path[len("sys/audit/") :]
        if op == "delete":
            return _tamper(path, "audit-disable", f"disabled the Vault audit device {name}/")
        if op in _WRITES:
            # A new device may stream the log elsewhere, or unhashed (`log_raw`).
            return _tamper(path, "audit-enable", f"enabled the Vault audit device {name}/")
        return None
    if path.startswith("sys/config/auditing/request-headers/") and op in (*_WRITES, "delete"):
        header = path.rsplit("/", 1)[-1]
        verb = "removed" if op == "delete" else "changed"
        return _change(path, "audit-headers", f"{verb} the audited request header {header}")
    if path.startswith("sys/raw"):
        return _change(path, f"raw-{op}", f"used sys/raw ({op}) on Vault's storage")
    if path.startswith("sys/generate-root") or path.startswith("sys/generate-recovery-token"):
        step = {"delete": "cancel", "read": "status"}.get(op, "attempt")
        if step == "status":
            return None
        return _change(path, f"generate-root-{step}", f"{step} of a root token generation")
    if path == "sys/remount" and op in _WRITES:  # where from and to is HMAC'd request data
        return _change(path, "mount-move", "moved a secrets engine or auth method to another path")
    for prefix, (write, delete, kind) in _VAULT_SYS.items():
        if path.startswith(prefix) and len(path) > len(prefix):
            name = path[len(prefix) :]
            mounted = _MOUNTED.get(prefix)
            if mounted and name.endswith("/tune"):
                if op in _WRITES:
                    name = name.removesuffix("/tune")
                    return _change(f"{prefix}{name}", f"{mounted}-tune", f"tuned the {kind} {name}")
                return None
            name = name.rstrip("/")
            if op in _WRITES:
                verb = "enabled" if mounted else "wrote"
                return _change(path, write, f"{verb} the {kind} {name}")
            if op == "delete":
                verb = "disabled" if mounted else "deleted"
                every = " (and every secret in it)" if prefix == "sys/mounts/" else ""
                return _change(path, delete, f"{verb} the {kind} {name}{every}")
            return None
    return None


# Tune settings that make every audit device log some values in clear (not HMAC'd).
UNHASHING = ("audit_non_hmac_request_keys", "audit_non_hmac_response_keys")


def vault_unhashed(tune: Change, settings: list[str]) -> Change:
    """A mount or auth method tuned with `UNHASHING` settings (`settings`, by name: their
    values are HMAC'd): the audit log itself will hold those values, secrets among them.

    >>> change = vault("sys/mounts/kv/tune", "update")
    >>> vault_unhashed(change, ["audit_non_hmac_response_keys"]).operation
    'audit-unhash'
    """
    what = tune.note.removeprefix(CONTROL_NOTE).removeprefix("tuned ")
    return _tamper(
        tune.secret,
        "audit-unhash",
        f"made audit devices log values of {what} in clear ({', '.join(settings)})",
    )


def vault_secret_id(role_secret: str, op: str) -> Change | None:
    """An AppRole secret-id generated: a credential issued (the parser keeps it a `read` of
    the role) and a control-plane act, judged against the caller's history."""
    if op not in _WRITES:
        return None
    role = role_secret.rsplit("/", 1)[-1]
    return _change(
        role_secret, "secret-id-generate", f"generated a secret-id for AppRole {role}", "read"
    )


def is_token_create(path: str) -> bool:
    return path in _TOKEN_CREATE or path.startswith("auth/token/create/")


def vault_token(path: str, root: bool, orphan: bool) -> Change | None:
    """A token created with the root policy or without a parent (it outlives the revocation
    of whoever created it); None for an ordinary child token.

    >>> vault_token("auth/token/create-orphan", False, False).operation
    'token-create-orphan'
    """
    orphan = orphan or path == "auth/token/create-orphan"
    if root:
        what = "created a root token" + (" without a parent (orphan)" if orphan else "")
        return _change(path, "token-create-root", what)
    if orphan:
        return _change(path, "token-create-orphan", "created an orphan token (no parent)")
    return None


# -- AWS CloudTrail -----------------------------------------------------------------------

SECRETSMANAGER = "secretsmanager.amazonaws.com"
KMS = "kms.amazonaws.com"
CLOUDTRAIL = "cloudtrail.amazonaws.com"
_AWS_POLICY = {"PutResourcePolicy": "changed", "DeleteResourcePolicy": "deleted"}
_KMS_CONTROL = {
    "DisableKey": "disabled the KMS key",
    "ScheduleKeyDeletion": "scheduled the deletion of the KMS key",
    "PutKeyPolicy": "changed the key policy of the KMS key",
    "DisableKeyRotation": "disabled rotation of the KMS key",
}
_TRAIL_TAMPER = {
    "StopLogging": "stopped logging on the CloudTrail trail",
    "DeleteTrail": "deleted the CloudTrail trail",
    "UpdateTrail": "changed the CloudTrail trail",
    "PutEventSelectors": "changed which events the CloudTrail trail records",
    "PutInsightSelectors": "changed the insights of the CloudTrail trail",
}


def aws_in_scope(source: str, event: str) -> bool:
    """Calls outside the secret APIs that are still kept: KMS key control, trail tampering."""
    return (source == KMS and event in _KMS_CONTROL) or (
        source == CLOUDTRAIL and event in _TRAIL_TAMPER
    )


def aws(source: str, event: str, req: dict[str, Any], region: str, account: str) -> Change | None:
    """The change a CloudTrail call makes; `secret` None means "the secret the call names"
    (the parser's own targets), set only where the target is not a secret (a trail).

    >>> aws(CLOUDTRAIL, "StopLogging", {"name": "t"}, "eu-west-1", "1").secret
    'arn:aws:cloudtrail:eu-west-1:1:trail/t'
    """
    if source == SECRETSMANAGER:
        if event in _AWS_POLICY:
            return _change(None, event, f"{_AWS_POLICY[event]} the secret's resource policy")
        if event == "DeleteSecret":
            if req.get("forceDeleteWithoutRecovery") is True:
                what = "deleted the secret without recovery"
            else:
                days = req.get("recoveryWindowInDays")
                window = f" in {days} days" if isinstance(days, int) else ""
                what = f"scheduled the deletion of the secret{window}"
            return _change(None, event, what, "delete")
        if event == "RotateSecret" and ("rotationLambdaARN" in req or "rotationRules" in req):
            return _change(None, event, "configured the secret's rotation", "rotate")
        if event == "CancelRotateSecret":
            return _change(None, event, "turned off the secret's rotation", "write")
        return None
    if source == KMS and event in _KMS_CONTROL:
        return _change(None, event, _KMS_CONTROL[event])
    if source == CLOUDTRAIL and event in _TRAIL_TAMPER:
        name = req.get("name") or req.get("trailName")
        trail = name if isinstance(name, str) and name else "unknown"
        if not trail.startswith("arn:"):
            trail = f"arn:aws:cloudtrail:{region}:{account}:trail/{trail}"
        return _tamper(trail, event, f"{_TRAIL_TAMPER[event]} {trail.rsplit('/', 1)[-1]}")
    return None


# -- Google Cloud -------------------------------------------------------------------------

_GCP_SECRETS = {
    "SetIamPolicy": ("control", "changed the IAM policy of"),
    "DestroySecretVersion": ("delete", "destroyed a version of"),
    "DisableSecretVersion": ("write", "disabled a version of"),
    "DeleteSecret": ("delete", "deleted"),
}


def gcp_secret(method: str, secret: str | None) -> Change | None:
    """Secret Manager calls that change access to a secret or destroy it."""
    if method not in _GCP_SECRETS:
        return None
    action, verb = _GCP_SECRETS[method]
    return _change(secret, method, f"{verb} the secret {secret or '(unnamed)'}", action)


def gcp_audit_config(method: str, payload: dict[str, Any], resource: str | None) -> Change | None:
    """A project (or folder, organization) SetIamPolicy that touches `auditConfigs` (in the
    request's policy or mask, or the logged `policyDelta`): it may turn Data Access logging
    off, which is how Secret Manager reads are seen at all."""
    if not method.endswith("SetIamPolicy"):
        return None
    request, data = payload.get("request"), payload.get("serviceData")
    policy = request.get("policy") if isinstance(request, dict) else None
    mask = request.get("updateMask") if isinstance(request, dict) else None
    delta = data.get("policyDelta") if isinstance(data, dict) else None
    touches = (
        (isinstance(policy, dict) and "auditConfigs" in policy)
        or (isinstance(mask, str) and "auditConfigs" in mask)
        or (isinstance(delta, dict) and bool(delta.get("auditConfigDeltas")))
    )
    if not touches:
        return None
    name = resource or "unknown"
    return _tamper(name, "SetIamPolicy:auditConfigs", f"changed the audit config of {name}")


# -- Azure Key Vault ----------------------------------------------------------------------

_AZURE_VAULT_FIELDS = ("accessPolicies", "networkAcls", "enableRbacAuthorization")
_AZURE_DELETES = {"SecretDelete": "deleted the secret", "SecretPurge": "purged the secret"}
DIAGNOSTIC_DELETE = "MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/DELETE"


def azure(
    operation: str, props: dict[str, Any], vault: str | None, secret: str | None
) -> Change | None:
    """VaultPut/VaultPatch that set access policies, network rules or the RBAC switch;
    secret deletes and purges (kept `delete`).

    >>> azure("VaultPatch", {"properties": {"accessPolicies": []}}, "v", None).operation
    'VaultPatch:accessPolicies'
    """
    if operation in ("VaultPut", "VaultPatch"):
        inner = props.get("properties")
        keys = [k for k in _AZURE_VAULT_FIELDS if isinstance(inner, dict) and k in inner]
        if not keys:
            return None
        return _change(
            f"{vault or 'unknown'}/",
            f"{operation}:{'+'.join(keys)}",
            f"changed {', '.join(keys)} of the key vault {vault or 'unknown'}",
        )
    if operation in _AZURE_DELETES:
        return _change(secret, operation, f"{_AZURE_DELETES[operation]} {secret}", "delete")
    return None


def azure_diagnostics(operation: str, resource: str) -> Change | None:
    """An Azure Activity Log record removing a Key Vault's diagnostic settings (the stream
    these events arrive by)."""
    if operation.upper() != DIAGNOSTIC_DELETE:
        return None
    scope = resource.split("/providers/microsoft.insights/", 1)[0].rstrip("/")
    vault = scope.rsplit("/", 1)[-1].lower() if scope else "unknown"
    return _tamper(
        f"{vault}/diagnosticSettings",
        "diagnosticSettings-delete",
        f"removed diagnostic settings of {vault}",
    )


# -- Kubernetes ---------------------------------------------------------------------------

_READ_VERBS = {"get", "list", "watch", "*"}
_RBAC_ROLES = {"roles", "clusterroles"}
_RBAC_BINDINGS = {"rolebindings", "clusterrolebindings"}
RBAC_RESOURCES = _RBAC_ROLES | _RBAC_BINDINGS


def grants_secrets(rules: object) -> bool:
    """Whether RBAC rules grant get, list or watch on core `secrets` (wildcards included).

    >>> grants_secrets([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}])
    True
    >>> grants_secrets([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}])
    False
    """
    for rule in rules if isinstance(rules, list) else ():
        if not isinstance(rule, dict):
            continue
        groups, resources, verbs = rule.get("apiGroups"), rule.get("resources"), rule.get("verbs")
        if not (
            isinstance(groups, list) and isinstance(resources, list) and isinstance(verbs, list)
        ):
            continue
        if not ({"", "*"} & set(map(str, groups))):
            continue
        if not ({"secrets", "*"} & set(map(str, resources))):
            continue
        if _READ_VERBS & set(map(str, verbs)):
            return True
    return False


def k8s_rbac(
    resource: str, verb: str, namespace: str | None, name: str | None, request: object
) -> Change | None:
    """A role written with rules that read secrets, or any binding written (a binding names
    its role, whose rules are not in the record: the binding and its roleRef are kept)."""
    if resource not in RBAC_RESOURCES or verb not in ("create", "update", "patch"):
        return None  # reads, and deletes (they take access away)
    target = f"rbac/{namespace or '*'}/{name or ''}"
    kind = resource.removesuffix("s")
    body = request if isinstance(request, dict) else {}
    if resource in _RBAC_ROLES:
        if "rules" not in body:  # Metadata level: the rules are not logged
            return _change(target, "rbac-role-write", f"wrote the {kind} {name} (rules not logged)")
        if not grants_secrets(body.get("rules")):
            return None
        return _change(
            target, "rbac-grant-secrets", f"wrote the {kind} {name}, granting read on secrets"
        )
    ref = body.get("roleRef")
    role = ref.get("name") if isinstance(ref, dict) else None
    role_kind = ref.get("kind") if isinstance(ref, dict) else None
    what = f"bound {role_kind or 'role'} {role or 'unknown'} with the {kind} {name}"
    return _change(target, "rbac-bind", what)


def k8s_secret_delete(verb: str, secret: str) -> Change | None:
    if verb not in ("delete", "deletecollection"):
        return None
    return _change(secret, verb, f"deleted the secret {secret}", "delete")
