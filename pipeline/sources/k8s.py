"""Kubernetes API server audit events (`audit.k8s.io/v1` and `v1beta1`) on `secrets`.

At level RequestResponse an event carries the whole Secret, values included, in
`requestObject` and `responseObject`; this parser never reads either (only `objectRef`),
so no value can reach a row. Each request is logged once per stage; RequestReceived is
skipped because the ResponseComplete event for the same `auditID` carries the outcome.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.errortext import clean_error
from pipeline.record import PROVISIONAL_NOTE, EventRow, clip, synthetic_id, to_micros
from pipeline.sources import control_plane
from pipeline.sources.base import document_source, obj, text

NAME = "k8s"
_RBAC = "rbac.authorization.k8s.io"

VERBS: dict[str, str] = {
    "get": "read",
    "list": "list",
    "watch": "list",
    "create": "write",
    "update": "write",
    "patch": "write",
    "delete": "delete",
    "deletecollection": "delete",
}
_TIMESTAMPS = ("stageTimestamp", "requestReceivedTimestamp", "timestamp")


def looks_like(doc: dict[str, Any]) -> bool:
    """An audit Event (not a core/v1 Event about pods, which has no auditID or objectRef)."""
    if doc.get("kind") != "Event":
        return False
    api = doc.get("apiVersion")
    return (
        "auditID" in doc
        or "objectRef" in doc
        or (isinstance(api, str) and api.startswith("audit.k8s.io"))
    )


_str = partial(text, source="k8s")


def identity_of(username: str | None) -> tuple[str, str]:
    """(identity, kind): service accounts as `namespace/name`, control-plane users as services.

    >>> identity_of("system:serviceaccount:kube-system:replicaset-controller")
    ('kube-system/replicaset-controller', 'service')
    """
    if not username or username == "system:anonymous":
        return username or "unknown", "unknown"
    if username.startswith("system:serviceaccount:"):
        parts = username.split(":", 3)
        if len(parts) == 4:
            return f"{parts[2]}/{parts[3]}", "service"
    if username.startswith("system:"):
        return username, "service"
    return username, "human"


def _outcome(doc: dict[str, Any], stage: str | None) -> tuple[str, str | None]:
    status = obj(doc.get("responseStatus"), "responseStatus")
    code = status.get("code")
    if code is not None and not isinstance(code, int):
        raise ParseError(f"k8s `responseStatus.code` must be an integer, got {code!r:.40}")
    reason = _str(status.get("reason"), "responseStatus.reason")
    message = _str(status.get("message"), "responseStatus.message")
    detail = " ".join(str(p) for p in (code, reason) if p)
    error = clip(clean_error(f"{detail}: {message}" if message and detail else message or detail))
    if stage == "Panic":
        return "error", error or "apiserver panic"
    decision = obj(doc.get("annotations"), "annotations").get("authorization.k8s.io/decision")
    if code in (401, 403) or decision == "forbid":
        return "denied", error or "forbidden"
    if code is not None and code >= 400:
        return "error", error
    return "success", None


def _timestamp(doc: dict[str, Any]) -> tuple[int, str | None]:
    for i, field in enumerate(_TIMESTAMPS):
        if doc.get(field) is not None:
            return to_micros(doc[field]), f"no stageTimestamp; used {field}" if i else None
    created = obj(doc.get("metadata"), "metadata").get("creationTimestamp")
    if created is not None:
        return to_micros(created), "no stageTimestamp; used metadata.creationTimestamp"
    raise ParseError("k8s audit event has no `stageTimestamp` or other timestamp")


def _check_event(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(objectRef, verb) once the record is known to be an audit event about secrets."""
    if doc.get("kind") != "Event":
        raise ParseError(f"k8s `kind` is {doc.get('kind')!r:.40}, expected 'Event'")
    api = _str(doc.get("apiVersion"), "apiVersion")
    if api and not api.startswith("audit.k8s.io/"):
        raise ParseError(f"k8s `apiVersion` is {api[:40]!r}, not an audit.k8s.io Event")
    ref = obj(doc.get("objectRef"), "objectRef")
    resource = ref.get("resource")
    rbac = isinstance(resource, str) and resource in control_plane.RBAC_RESOURCES
    rbac = rbac and ref.get("apiGroup") == _RBAC
    if not rbac and (ref.get("resource") != "secrets" or ref.get("apiGroup") not in (None, "")):
        raise NotSecretAccess("k8s: not a secrets resource")
    if doc.get("stage") == "RequestReceived":
        raise NotSecretAccess(
            "k8s: RequestReceived stage (the ResponseComplete event carries the outcome)"
        )
    verb = _str(doc.get("verb"), "verb")
    if not verb:
        raise ParseError("k8s audit event has no `verb`")
    return ref, verb


def parse(doc: dict[str, Any], backend: str | None) -> list[EventRow]:
    """One row per audit event on a Secret; reads `objectRef`, never the objects."""
    ref, verb = _check_event(doc)
    ts, ts_note = _timestamp(doc)
    user = _str(obj(doc.get("user"), "user").get("username"), "user.username")
    impersonated = obj(doc.get("impersonatedUser"), "impersonatedUser")
    notes = [ts_note]
    if impersonated:
        as_user = _str(impersonated.get("username"), "impersonatedUser.username")
        notes.append(f"impersonated by {user or 'unknown'}")
        user = as_user
    elif not user:
        notes.append("no user.username in record")
    identity, kind = identity_of(user)
    namespace = _str(ref.get("namespace"), "objectRef.namespace")
    name = _str(ref.get("name"), "objectRef.name")
    ips = doc.get("sourceIPs")
    source_ip = ips[0] if isinstance(ips, list) and ips and isinstance(ips[0], str) else None
    audit_id = _str(doc.get("auditID"), "auditID")
    event_id = audit_id
    if not event_id:
        uri = doc.get("requestURI")
        event_id = synthetic_id(NAME, ts, verb, user, uri, source_ip, doc.get("stage"))
        notes.append("no auditID; id derived from record fields")
    stage = _str(doc.get("stage"), "stage")
    outcome, error = _outcome(doc, stage)
    target = f"{namespace or '*'}/{name or ''}"
    secret: str | None = target
    action = VERBS.get(verb, "other")
    change = _control(doc, ref, verb, namespace, name, target)
    if change is not None:
        secret, action, verb = change.secret, change.action, change.operation
        notes.append(change.note)
    return [
        EventRow(
            event_id,
            ts,
            NAME,
            backend or "kubernetes",
            identity,
            kind,
            secret,
            action,
            verb,
            outcome,
            source_ip,
            clip(_str(doc.get("userAgent"), "userAgent")),
            audit_id,
            error,
            _note(notes, stage, audit_id),
        )
    ]


def _control(
    doc: dict[str, Any],
    ref: dict[str, Any],
    verb: str,
    namespace: str | None,
    name: str | None,
    secret: str,
) -> control_plane.Change | None:
    """A secret deleted, or an RBAC object written that grants reading secrets (a role's
    rules are read from `requestObject`, the only part of it read: roles hold no values);
    an RBAC change that grants nothing on secrets is skipped."""
    resource = ref.get("resource")
    if resource == "secrets":
        return control_plane.k8s_secret_delete(verb, secret)
    body = doc.get("requestObject")
    if body is None:
        body = doc.get("responseObject")
    change = control_plane.k8s_rbac(str(resource), verb, namespace, name, body)
    if change is None:
        raise NotSecretAccess("k8s: RBAC change that grants nothing on secrets")
    return change


def _note(notes: list[str | None], stage: str | None, audit_id: str | None) -> str | None:
    """The record's notes; a started watch is provisional: its ResponseComplete record,
    logged under the same auditID when the watch ends, replaces it in the store."""
    note = "; ".join(n for n in notes if n) or None
    if stage == "ResponseStarted" and audit_id and note is None:
        return PROVISIONAL_NOTE
    return note


SPEC = document_source(
    NAME, looks_like, parse, "Kubernetes API server audit events (audit.k8s.io) on secrets"
)
