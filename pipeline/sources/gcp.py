"""Google Cloud Audit Logs (Data Access and Admin Activity) for Secret Manager.

Exported entries are often trimmed (the published samples lack `timestamp`, `insertId` and
`authenticationInfo`), so every fallback the parser takes is written into the row's note.
Only resource names are read; Secret Manager never logs payloads, and `request` is consulted
for `name`, `parent` and `secretId` alone.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.errortext import clean_error
from pipeline.record import EventRow, clip, synthetic_id, to_micros
from pipeline.sources import control_plane
from pipeline.sources.addresses import split_address
from pipeline.sources.base import document_source, obj, text

NAME = "gcp"
SERVICE = "secretmanager.googleapis.com"

_METHODS = {
    "read": "AccessSecretVersion",
    "list": "GetSecret GetSecretVersion ListSecrets ListSecretVersions GetIamPolicy",
    "write": "AddSecretVersion CreateSecret UpdateSecret EnableSecretVersion DisableSecretVersion"
    " SetIamPolicy",
    "delete": "DeleteSecret DestroySecretVersion",
}
ACTIONS: dict[str, str] = {m: act for act, methods in _METHODS.items() for m in methods.split()}

# google.rpc.Code names, for short error strings.
_CODES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}  # fmt: skip
_DENIED_CODES = (7, 16)


def looks_like(doc: dict[str, Any]) -> bool:
    """A Cloud Audit Log entry: `protoPayload` of type AuditLog (or for Secret Manager)."""
    payload = doc.get("protoPayload")
    if not isinstance(payload, dict):
        return False
    kind = payload.get("@type")
    if isinstance(kind, str) and kind.endswith("google.cloud.audit.AuditLog"):
        return True
    return payload.get("serviceName") == SERVICE


_str = partial(text, source="gcp")


def identity_of(auth: dict[str, Any]) -> tuple[str, str, str | None]:
    """(identity, kind, note) from `authenticationInfo`; service accounts are services."""
    email = _str(auth.get("principalEmail"), "authenticationInfo.principalEmail")
    if email:
        if email.endswith(".gserviceaccount.com"):
            kind = "service"
        else:
            kind = "human" if "@" in email else "unknown"
        chain = auth.get("serviceAccountDelegationInfo")
        first = chain[0] if isinstance(chain, list) and chain else None
        via = obj(first, "serviceAccountDelegationInfo[0]").get("firstPartyPrincipal")
        via_email = obj(via, "firstPartyPrincipal").get("principalEmail")
        note = f"delegated by {via_email}" if isinstance(via_email, str) else None
        return email, kind, note
    subject = _str(auth.get("principalSubject"), "authenticationInfo.principalSubject")
    if subject:
        return subject, "unknown", "no principalEmail; identity is principalSubject"
    return "unknown", "unknown", "no authenticationInfo.principalEmail in record"


def secret_of(resource: str | None, method: str, request: dict[str, Any]) -> str | None:
    """Canonical secret name: versions stripped; a project-level list names the folder.

    >>> secret_of("projects/p/secrets/db/versions/latest", "AccessSecretVersion", {})
    'projects/p/secrets/db'
    >>> secret_of("projects/p", "ListSecrets", {})
    'projects/p/secrets/'
    """
    if not resource:
        return None
    head, sep, _ = resource.partition("/versions/")
    if sep or "/secrets/" in resource:
        return head
    secret_id = request.get("secretId")
    if method == "CreateSecret" and isinstance(secret_id, str):
        return f"{resource.rstrip('/')}/secrets/{secret_id}"
    return f"{resource.rstrip('/')}/secrets/"


def _timestamp(doc: dict[str, Any], attrs: dict[str, Any]) -> tuple[int, str | None]:
    if doc.get("timestamp") is not None:
        return to_micros(doc["timestamp"]), None
    if doc.get("receiveTimestamp") is not None:
        return to_micros(doc["receiveTimestamp"]), "no timestamp in record; used receiveTimestamp"
    if attrs.get("time") is not None:
        note = "no timestamp in record; used requestMetadata.requestAttributes.time"
        return to_micros(attrs["time"]), note
    raise ParseError("gcp audit entry has no `timestamp`, `receiveTimestamp` or request time")


def _outcome(payload: dict[str, Any]) -> tuple[str, str | None]:
    status = obj(payload.get("status"), "protoPayload.status")
    code = status.get("code") or 0
    if not isinstance(code, int):
        raise ParseError(f"gcp `protoPayload.status.code` must be an integer, got {code!r:.40}")
    if code:
        message = _str(status.get("message"), "protoPayload.status.message")
        name = _CODES.get(code, str(code))
        error = clip(clean_error(f"{name}: {message}" if message else name))
        return ("denied" if code in _DENIED_CODES else "error"), error
    infos = payload.get("authorizationInfo")
    for info in infos if isinstance(infos, list) else ():
        if isinstance(info, dict) and info.get("granted") is False:
            denied = f"PERMISSION_DENIED: {info.get('permission')} not granted"
            return "denied", clip(clean_error(denied))
    return "success", None


def _project(doc: dict[str, Any], resource: str | None) -> str | None:
    labels = obj(obj(doc.get("resource"), "resource").get("labels"), "resource.labels")
    project = _str(labels.get("project_id"), "resource.labels.project_id")
    if not project and resource and resource.startswith("projects/"):
        project = resource.split("/")[1]
    return project


def parse(doc: dict[str, Any], backend: str | None) -> list[EventRow]:
    """One row per audit entry; entries for other services are skipped."""
    payload = doc.get("protoPayload")
    if not isinstance(payload, dict):
        raise ParseError("gcp audit entry has no `protoPayload` object")
    service = _str(payload.get("serviceName"), "protoPayload.serviceName")
    if not service:
        raise ParseError("gcp audit entry has no `protoPayload.serviceName`")
    full_method = _str(payload.get("methodName"), "protoPayload.methodName")
    change = None
    if service != SERVICE:  # kept only when it changes audit logging itself
        resource_name = _str(payload.get("resourceName"), "protoPayload.resourceName")
        change = control_plane.gcp_audit_config(full_method or "", payload, resource_name)
        if change is None:
            raise NotSecretAccess(f"gcp: not Secret Manager ({service[:60]})")
    if not full_method:
        raise ParseError("gcp audit entry has no `protoPayload.methodName`")
    method = full_method.rsplit(".", 1)[-1]
    meta = obj(payload.get("requestMetadata"), "protoPayload.requestMetadata")
    attrs = obj(meta.get("requestAttributes"), "requestMetadata.requestAttributes")
    ts, ts_note = _timestamp(doc, attrs)
    auth = obj(payload.get("authenticationInfo"), "protoPayload.authenticationInfo")
    identity, kind, id_note = identity_of(auth)
    request = obj(payload.get("request"), "protoPayload.request")
    resource = (
        _str(payload.get("resourceName"), "protoPayload.resourceName")
        or _str(request.get("name"), "protoPayload.request.name")
        or _str(request.get("parent"), "protoPayload.request.parent")
    )
    caller_ip = _str(meta.get("callerIp"), "requestMetadata.callerIp")
    notes = [ts_note, id_note]
    event_id = _str(doc.get("insertId"), "insertId")
    if not event_id:
        stamp = doc.get("timestamp") or doc.get("receiveTimestamp") or attrs.get("time")
        event_id = synthetic_id(NAME, stamp, full_method, resource, identity, caller_ip)
        notes.append("no insertId; id derived from record fields")
    outcome, error = _outcome(payload)
    operation = obj(doc.get("operation"), "operation")
    address, ip_note = split_address(caller_ip)  # `private`, `gce-internal-ip`: no address
    notes.append(ip_note)
    secret, action = secret_of(resource, method, request), ACTIONS.get(method, "other")
    if change is None:
        change = control_plane.gcp_secret(method, secret)
    if change is not None:
        secret, action, method = change.secret, change.action, change.operation
        notes.append(change.note)
    return [
        EventRow(
            event_id,
            ts,
            NAME,
            backend or _project(doc, resource) or NAME,
            identity,
            kind,
            secret,
            action,
            method,
            outcome,
            address,
            clip(_str(meta.get("callerSuppliedUserAgent"), "callerSuppliedUserAgent")),
            _str(operation.get("id"), "operation.id"),
            error,
            "; ".join(n for n in notes if n) or None,
        )
    ]


SPEC = document_source(
    NAME,
    looks_like,
    parse,
    "Google Cloud Audit Logs for Secret Manager (protoPayload AuditLog entries)",
)
