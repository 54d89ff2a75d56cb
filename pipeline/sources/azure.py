"""Azure Key Vault diagnostic logs, category `AuditEvent`.

Key Vault records and Azure Activity Log records often land in the same export, and both carry
`operationName` and `resourceId`; an Activity Log record (its `category` is an object) is
dead-lettered with a reason that says so rather than misread. Claims come with short names
(`upn`, `appid`, `oid`) in data-plane records and long URI names in vault-level ones.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.errortext import clean_error
from pipeline.record import EventRow, clip, synthetic_id, to_micros
from pipeline.sources import control_plane
from pipeline.sources.addresses import split_address
from pipeline.sources.base import document_source, obj, text

NAME = "azure"

_OPERATIONS = {
    "read": "SecretGet SecretBackup KeyGet KeyBackup KeyDecrypt KeyUnwrap CertificateGet"
    " CertificateBackup",
    "list": "SecretGetDeleted KeyGetDeleted CertificateGetDeleted",
    "write": "SecretSet SecretUpdate SecretRestore SecretRecover KeyCreate KeyImport KeyUpdate"
    " KeyRestore KeyRecover CertificateImport CertificateCreate CertificateUpdate"
    " CertificateRestore CertificateRecover",
    "rotate": "KeyRotate SecretRotate",
}
ACTIONS: dict[str, str] = {op: act for act, ops in _OPERATIONS.items() for op in ops.split()}

_UPN = ("upn", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "unique_name")
_APPID = ("appid", "http://schemas.microsoft.com/identity/claims/appid", "azp")
_OID = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")
# Object collections in a vault URL; deleted* name the same object while soft-deleted.
_COLLECTIONS = {"secrets", "keys", "certificates", "storage"}


def looks_like(doc: dict[str, Any]) -> bool:
    """A Key Vault AuditEvent: category `AuditEvent`, an operation, a Key Vault resource."""
    if doc.get("category") != "AuditEvent" or not isinstance(doc.get("operationName"), str):
        return False
    resource = doc.get("resourceId")
    return resource is None or (
        isinstance(resource, str) and "MICROSOFT.KEYVAULT" in resource.upper()
    )


_str = partial(text, source="azure")


def vault_level(operation: str) -> bool:
    """Operations on the vault itself (management plane, authentication), not on an object."""
    return operation.startswith("Vault") or operation == "Authentication"


def action_of(operation: str) -> str:
    """Action for a Key Vault operation name; vault-level operations are `other`."""
    if vault_level(operation):
        return "other"
    if operation in ACTIONS:
        return ACTIONS[operation]
    if "List" in operation:
        return "list"
    if operation.endswith(("Delete", "Purge")):
        return "delete"
    return "other"


def identity_of(claim: dict[str, Any]) -> tuple[str, str, str | None]:
    """(identity, kind, note): a signed-in user by UPN, else an application by app id."""
    for keys, kind in ((_UPN, "human"), (_APPID, "service"), (_OID, "unknown")):
        for key in keys:
            value = _str(claim.get(key), f"identity.claim.{key}")
            if value:
                note = "no upn or appid in claims; identity is the object id"
                return value, kind, note if keys is _OID else None
    return "unknown", "unknown", "no identity claims in record"


def secret_of(url: str | None) -> tuple[str | None, str | None]:
    """(vault, canonical secret) from a vault object URL; a collection URL names the folder.

    >>> secret_of("https://MyVault.vault.azure.net/secrets/db/4387e9f3")
    ('myvault', 'myvault/secrets/db')
    >>> secret_of("https://myvault.vault.azure.net/keys?api-version=7.0")
    ('myvault', 'myvault/keys/')
    """
    if not url:
        return None, None
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ParseError(f"azure object URL {url[:60]!r} is not a URL") from None
    host = (parts.hostname or "").lower()
    if not host or host.startswith("management."):
        return None, None
    vault = host.split(".", 1)[0]
    segments = [s for s in parts.path.split("/") if s]
    collection = segments[0].removeprefix("deleted") if segments else ""
    if collection not in _COLLECTIONS:
        return vault, None
    if len(segments) == 1:
        return vault, f"{vault}/{collection}/"
    return vault, f"{vault}/{collection}/{segments[1]}"


def _outcome(doc: dict[str, Any], props: dict[str, Any]) -> tuple[str, str | None]:
    status = props.get("httpStatusCode")
    signature = _str(doc.get("resultSignature"), "resultSignature")
    result = _str(doc.get("resultType"), "resultType")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if status is not None and not isinstance(status, int):
        raise ParseError(f"azure `properties.httpStatusCode` must be a number, got {status!r:.40}")
    if status is not None:
        outcome = "denied" if status in (401, 403) else "error" if status >= 400 else "success"
    elif signature in ("Unauthorized", "Forbidden") or result == "Unauthorized":
        outcome = "denied"
    elif result == "Failure":
        outcome = "error"
    else:
        outcome = "success"
    if outcome == "success":
        return outcome, None
    description = _str(doc.get("resultDescription"), "resultDescription")
    parts = [str(status) if status is not None else None, signature, description]
    return outcome, clip(clean_error(" ".join(p for p in parts if p) or result))


def _event_id(doc: dict[str, Any], props: dict[str, Any], identity: str) -> tuple[str, str | None]:
    """The request's own id where the record has one; else a stable one from its fields."""
    for value, field in (
        (props.get("requestId"), "properties.requestId"),
        (doc.get("id"), "id"),
        (doc.get("correlationId"), "correlationId"),
    ):
        if _str(value, field):
            return str(value), None
    derived = synthetic_id(
        NAME, doc.get("time"), doc.get("operationName"), doc.get("resourceId"), identity,
        props.get("requestUri"), doc.get("callerIpAddress"),
    )  # fmt: skip
    return derived, "no request or correlation id; id derived from record fields"


def _check_record(doc: dict[str, Any]) -> str:
    """The operation name, once the record is known to be a Key Vault AuditEvent."""
    category = doc.get("category")
    if isinstance(category, dict):
        value = category.get("value")
        raise ParseError(
            f"Azure Activity Log record, not a Key Vault AuditEvent (category {value})"
        )
    if not isinstance(category, str):
        raise ParseError("azure record has no `category`; not a Key Vault AuditEvent")
    if category != "AuditEvent":
        raise NotSecretAccess(f"azure: Key Vault log category {category[:40]}, not AuditEvent")
    resource = _str(doc.get("resourceId"), "resourceId")
    if resource and "MICROSOFT.KEYVAULT" not in resource.upper():
        raise NotSecretAccess("azure: AuditEvent not from Key Vault")
    operation = _str(doc.get("operationName"), "operationName")
    if not operation:
        raise ParseError("azure AuditEvent has no `operationName`")
    return operation


def parse(doc: dict[str, Any], backend: str | None) -> list[EventRow]:
    """One row per AuditEvent, and per Activity Log record removing a vault's diagnostic
    settings (the stream these events come by: tampering with audit)."""
    if isinstance(doc.get("category"), dict):
        removed = _diagnostics_removed(doc, backend)
        if removed is not None:
            return [removed]
    operation = _check_record(doc)
    if doc.get("time") is None:
        raise ParseError("azure AuditEvent has no `time`")
    ts = to_micros(doc["time"])
    props = obj(doc.get("properties"), "properties")
    claim = obj(obj(doc.get("identity"), "identity").get("claim"), "identity.claim")
    identity, kind, id_note = identity_of(claim)
    vault, secret = secret_of(_str(props.get("id"), "properties.id"))
    if secret is None:
        vault_uri, secret = secret_of(_str(props.get("requestUri"), "properties.requestUri"))
        vault = vault or vault_uri
    if vault_level(operation):
        secret = None  # they name the vault, not an object in it
    resource = _str(doc.get("resourceId"), "resourceId")
    if resource:
        vault = resource.rstrip("/").rsplit("/", 1)[-1].lower()
    change = control_plane.azure(operation, props, vault, secret)
    outcome, error = _outcome(doc, props)
    event_id, eid_note = _event_id(doc, props, identity)
    # `<Redacted>` and the like are no address (README: only addresses in source_ip).
    caller_ip, ip_note = split_address(_str(doc.get("callerIpAddress"), "callerIpAddress"))
    return [
        EventRow(
            event_id,
            ts,
            NAME,
            backend or vault or NAME,
            identity,
            kind,
            change.secret if change else secret,
            change.action if change else action_of(operation),
            change.operation if change else operation,
            outcome,
            caller_ip,
            clip(_str(props.get("clientInfo"), "properties.clientInfo")),
            _str(doc.get("correlationId"), "correlationId"),
            error,
            "; ".join(n for n in (id_note, eid_note, ip_note, change and change.note) if n) or None,
        )
    ]


def _diagnostics_removed(doc: dict[str, Any], backend: str | None) -> EventRow | None:
    """An Activity Log record deleting a Key Vault's diagnostic settings, as an event; None
    for any other Activity Log record (dead-lettered by `_check_record`, as before)."""
    name = doc.get("operationName")
    operation = name.get("value") if isinstance(name, dict) else name
    resource = _str(doc.get("resourceId"), "resourceId") or ""
    if not isinstance(operation, str) or "MICROSOFT.KEYVAULT" not in resource.upper():
        return None
    change = control_plane.azure_diagnostics(operation, resource.lower())
    if change is None:
        return None
    stamp = doc.get("eventTimestamp") or doc.get("time")
    if stamp is None:
        raise ParseError("Azure Activity Log record has no `eventTimestamp`")
    claims = obj(doc.get("claims"), "claims")
    identity, kind, id_note = identity_of(claims)
    caller = _str(doc.get("caller"), "caller")
    if identity == "unknown" and caller:
        identity, kind, id_note = caller, "human" if "@" in caller else "unknown", None
    status = obj(doc.get("status"), "status").get("value")
    outcome = "success" if status in (None, "Succeeded", "Started", "Accepted") else "error"
    if status == "Failed" and "Authorization" in str(obj(doc.get("subStatus"), "subStatus")):
        outcome = "denied"
    address, ip_note = split_address(_str(doc.get("callerIpAddress"), "callerIpAddress"))
    event_id = _str(doc.get("eventDataId"), "eventDataId") or synthetic_id(
        NAME, stamp, operation, resource, identity
    )
    vault = change.secret.split("/", 1)[0] if change.secret else None
    return EventRow(
        event_id, to_micros(stamp), NAME, backend or vault or NAME, identity, kind,
        change.secret, change.action, change.operation, outcome, address, None,
        _str(doc.get("correlationId"), "correlationId"), None,
        "; ".join(n for n in (id_note, ip_note, change.note) if n),
    )  # fmt: skip


SPEC = document_source(
    NAME, looks_like, parse, "Azure Key Vault diagnostic logs (category AuditEvent)"
)
