"""Vault Enterprise KMIP audit entries (`kmip-request` / `kmip-response`): normalized or
skipped with a precise reason, never dead-lettered (issue 17 item 5). The lines follow the
shape of a published Vault 1.8 KMIP audit excerpt (jamiewri/vault-kmip-client-test README:
`{"time":...,"type":"kmip-response","auth":{"token_type":"default"},"request":{"namespace":
{"id":"root"},"data":{"kmip_request": <TTLV as JSON: tag/type/value>}}}`), with the KMIP
1.4 message structure (RequestMessage > BatchItem > Operation, RequestPayload >
UniqueIdentifier; ResponseMessage > BatchItem > ResultStatus, ResultReason)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import vault_run as run

from pipeline.ingest import Ingestor
from pipeline.sources import vault_kmip
from pipeline.sources.formats import recognize_format
from pipeline.store.duckdb import DuckDBStore

UID = "4L2Xc42pQo3V3QIBzFut37NLhZgtfKv6"


def _item(tag: str, kind: str, value: object) -> dict:
    return {"tag": tag, "type": kind, "value": value}


def kmip_request(operation: str, uid: str | None) -> dict:
    payload = [_item("UniqueIdentifier", "TextString", uid)] if uid else []
    return _item(
        "RequestMessage",
        "Structure",
        [
            _item("RequestHeader", "Structure", [_item("BatchCount", "Integer", 1)]),
            _item(
                "BatchItem",
                "Structure",
                [
                    _item("Operation", "Enumeration", operation),
                    _item("RequestPayload", "Structure", payload),
                ],
            ),
        ],
    )


def kmip_response(
    operation: str, uid: str | None, status: str = "Success", reason: str = ""
) -> dict:
    batch = [
        _item("Operation", "Enumeration", operation),
        _item("ResultStatus", "Enumeration", status),
    ]
    if reason:
        batch += [
            _item("ResultReason", "Enumeration", reason),
            _item("ResultMessage", "TextString", "role may not perform this operation"),
        ]
    if uid and status == "Success":
        batch.append(
            _item("ResponsePayload", "Structure", [_item("UniqueIdentifier", "TextString", uid)])
        )
    return _item("ResponseMessage", "Structure", [_item("BatchItem", "Structure", batch)])


def entry(kind: str, rid: str, operation: str, uid: str | None = UID, **result: str) -> dict:
    request = {
        "id": rid,
        "namespace": {"id": "root"},
        "mount_type": "kmip",
        "mount_point": "kmip/",
        "remote_address": "10.2.3.4",
        "data": {"kmip_request": kmip_request(operation, uid)},
    }
    out: dict = {"time": "2021-11-18T03:58:45.389287Z", "type": kind}
    out["auth"] = {"token_type": "default"}
    out["request"] = request
    if kind == "kmip-response":
        out["response"] = {"data": {"kmip_response": kmip_response(operation, uid, **result)}}
    return out


def test_kmip_get_is_a_read_of_the_managed_object() -> None:
    result = run(entry("kmip-request", "k1", "Get"), entry("kmip-response", "k1", "Get"))
    (row,) = result.rows
    assert (row.secret, row.action, row.operation, row.outcome) == (
        f"kmip/objects/{UID}",
        "read",
        "kmip:Get",
        "success",
    )
    assert (row.event_id, row.source_ip, row.identity) == ("k1", "10.2.3.4", "unknown")
    assert row.note == vault_kmip.NO_CALLER_NOTE
    assert (result.consumed, result.skipped_records, result.dead_records) == (1, 1, 0)
    assert dict(result.skipped) == {vault_kmip.REQUEST_REASON: 1}


def test_kmip_operations_and_denials() -> None:
    result = run(
        entry("kmip-response", "c", "Create"),
        entry("kmip-response", "l", "Locate", uid=None),
        entry("kmip-response", "r", "ReKey"),
        entry("kmip-response", "d", "Destroy", status="OperationFailed", reason="PermissionDenied"),
        entry("kmip-response", "e", "Get", status="OperationFailed", reason="ItemNotFound"),
    )
    got = {r.event_id: (r.action, r.outcome, r.secret) for r in result.rows}
    assert got == {
        "c": ("write", "success", f"kmip/objects/{UID}"),
        "l": ("list", "success", None),
        "r": ("rotate", "success", f"kmip/objects/{UID}"),
        "d": ("delete", "denied", f"kmip/objects/{UID}"),
        "e": ("read", "error", f"kmip/objects/{UID}"),
    }
    denied = next(r for r in result.rows if r.event_id == "d")
    assert denied.error is not None and denied.error.startswith("OperationFailed: PermissionDenied")
    assert result.dead == []


def test_unreadable_kmip_entry_is_skipped_not_dead() -> None:
    bare = {"time": "2021-11-18T03:58:45Z", "type": "kmip-response", "request": {"data": {}}}
    result = run(bare)
    assert (result.rows, result.dead) == ([], [])
    assert dict(result.skipped) == {vault_kmip.UNREADABLE_REASON: 1}


def test_kmip_lines_beside_ordinary_ones_through_ingest(tmp_path: Path) -> None:
    plain = {
        "request": {"id": "p1", "operation": "read", "path": "secret/data/a", "mount_type": "kv"},
        "auth": {"display_name": "root", "policies": ["root"]},
        "time": "2021-11-18T03:58:46.0Z",
        "type": "response",
    }
    lines = [
        entry("kmip-request", "k1", "Get"),
        entry("kmip-response", "k1", "Get"),
        plain,
    ]
    path = tmp_path / "audit.log"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        summary = Ingestor(store).ingest([str(path)])
        assert store.count() == 2
        assert len(store.dead_letters()) == 0
    assert (summary.records, summary.consumed, summary.skipped_records, summary.dead_records) == (
        3,
        2,
        1,
        0,
    )
    kmip_only = [(json.dumps(x).encode(), i, 0) for i, x in enumerate(lines[:2], 1)]
    assert recognize_format(kmip_only) == "vault"
