"""Vault Enterprise KMIP entries (`kmip-request` / `kmip-response`), which the audit device
writes for calls to the KMIP secrets engine's own listener (port 5696), beside the usual
request/response entries.

Their `request.data.kmip_request` and `response.data.kmip_response` hold the KMIP message as
TTLV in JSON: `{"tag": ..., "type": ..., "value": ...}`, structures nesting lists of such
items (seen in a Vault 1.8 log: `{"type":"kmip-response","auth":{"token_type":"default"},
"request":{"namespace":{"id":"root"},"data":{"kmip_request": ... [{"tag":
"UniqueIdentifier","type":"TextString","value":"4L2X..."}] ...`). The response entry
makes the event: the KMIP operation, the managed object it names (`<mount>objects/<id>`),
its result (`OperationFailed` for `PermissionDenied` is denied); the request entry is
skipped, its response carrying everything it says. Not on the hot path: only lines whose
`type` is neither `request` nor `response` come here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pipeline.errors import NotSecretAccess
from pipeline.errortext import clean_error
from pipeline.record import EventRow, clip, synthetic_id, to_micros

TYPES = ("kmip-request", "kmip-response")
REQUEST_REASON = "vault: KMIP request entry (its kmip-response entry makes the event)"
UNREADABLE_REASON = "vault: KMIP entry naming no operation or time (KMIP TTLV unreadable)"
NO_CALLER_NOTE = "identity: a KMIP client, known by its TLS certificate only (not logged)"

# KMIP 1.4 operations by what they do to a managed object.
_KMIP_OPERATIONS = {
    "read": "Get Export Decrypt GetUsageAllocation",
    "list": "Locate GetAttributes GetAttributeList Query DiscoverVersions Check",
    "write": "Create CreateKeyPair Register Activate AddAttribute ModifyAttribute SetAttribute"
    " DeleteAttribute Encrypt Sign SignatureVerify MAC MACVerify ObtainLease Certify Recover",
    "delete": "Destroy Revoke Archive",
    "rotate": "ReKey ReKeyKeyPair ReCertify",
}
ACTIONS = {op: act for act, ops in _KMIP_OPERATIONS.items() for op in ops.split()}
_WANTED = ("Operation", "UniqueIdentifier", "ResultStatus", "ResultReason", "ResultMessage")
_MAX_ITEMS = 10_000  # a KMIP message is small; a hostile one is walked this far only


def _walk(ttlv: object) -> dict[str, str]:
    """The first value of each wanted tag, anywhere in the TTLV tree (iteratively, bounded)."""
    found: dict[str, str] = {}
    stack, seen = [ttlv], 0
    while stack and seen < _MAX_ITEMS and len(found) < len(_WANTED):
        item = stack.pop()
        seen += 1
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            tag, value = item.get("tag"), item.get("value")
            if tag in _WANTED and tag not in found and isinstance(value, str | int):
                found[tag] = str(value)
            elif isinstance(value, list | dict):
                stack.append(value)
            else:  # `{"kmip_request": {...}}`: the message under a data key
                stack.extend(v for k, v in item.items() if k not in ("tag", "type", "value"))
    return found


def normalize(doc: dict[str, Any], backend: str | None, identity: tuple[str, str]) -> EventRow:
    """One event from a `kmip-response` entry (already decoded whole: a rare line); raises
    NotSecretAccess for a `kmip-request` entry or one that names no operation."""
    if doc.get("type") != "kmip-response":
        raise NotSecretAccess(REQUEST_REASON)
    request, response = _object(doc.get("request")), _object(doc.get("response"))
    found = _walk([request.get("data"), response.get("data")])
    time = doc.get("time")
    operation = found.get("Operation")
    if not operation or not isinstance(time, str):
        raise NotSecretAccess(UNREADABLE_REASON)
    mount = request.get("mount_point") if isinstance(request.get("mount_point"), str) else None
    uid = found.get("UniqueIdentifier")
    secret = f"{mount or 'kmip/'}objects/{uid}" if uid else None
    namespace = request.get("namespace")
    prefix = namespace.get("path") if isinstance(namespace, dict) else None
    if isinstance(prefix, str) and prefix and secret:
        secret = prefix.rstrip("/") + "/" + secret
    status, reason = found.get("ResultStatus", "Success"), found.get("ResultReason", "")
    error = doc.get("error") if isinstance(doc.get("error"), str) else None
    outcome = "success"
    if error or status != "Success":
        denied = any(w in reason for w in ("Permission", "Authentication", "Unauthorized"))
        outcome = "denied" if denied else "error"
        error = error or f"{status}: {reason} {found.get('ResultMessage', '')}".strip()
    rid = request.get("id") if isinstance(request.get("id"), str) else None
    address = request.get("remote_address")
    address = address if isinstance(address, str) else None
    event_id = rid or synthetic_id("vault", "kmip", time, operation, uid, address)
    name, kind = identity
    return EventRow(
        event_id,
        to_micros(time),
        "vault",
        backend or "vault",
        name,
        kind,
        secret,
        ACTIONS.get(operation, "other"),
        f"kmip:{clip(operation, 64)}",
        outcome,
        address,
        None,
        rid,
        clip(clean_error(error)) if error else None,
        NO_CALLER_NOTE if name == "unknown" else None,
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def decode(raw: bytes) -> dict[str, Any]:
    """The whole entry as plain values (KMIP lines are rare; their data is read in full)."""
    doc = msgspec.json.decode(raw)
    if not isinstance(doc, dict):
        raise NotSecretAccess(UNREADABLE_REASON)
    return doc
