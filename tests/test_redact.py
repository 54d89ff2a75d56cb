"""Redaction of raw bytes kept in dead letters: secret values never survive."""

from __future__ import annotations

import json

import orjson
import pytest

from pipeline.redact import MAX_RAW, SENSITIVE_KEYS, redact_raw
from pipeline.sources.base import DeadLetter

MASK = b'"[REDACTED]"'


def test_docstring_examples() -> None:
    assert (
        redact_raw(b'{"kind":"Secret","data":{"pw":"aHVudGVyMg=="},"x":1}')
        == b'{"kind":"Secret","data":"[REDACTED]","x":1}'
    )
    assert redact_raw(b'{"SecretString":"hunter2') == b'{"SecretString":"[REDACTED]"'


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_every_sensitive_key_is_masked(key: str) -> None:
    raw = json.dumps({"before": "kept-1", key: "TOPSECRET-value", "after": "kept-2"}).encode()
    out = redact_raw(raw)
    assert b"TOPSECRET" not in out
    assert f'"{key}": '.encode() + MASK in out
    assert b"kept-1" in out
    assert b"kept-2" in out
    # The result of a valid document is still valid JSON.
    assert orjson.loads(out)[key] == "[REDACTED]"


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        12345,
        3.5,
        True,
        ["TOPSECRET-a", "TOPSECRET-b"],
        {"password": "TOPSECRET", "nested": {"deeper": ["TOPSECRET"]}},
        'with "quotes" and } brackets ] and \\ backslashes TOPSECRET',
    ],
)
def test_values_of_any_type_are_masked_whole(value: object) -> None:
    raw = orjson.dumps({"kind": "Secret", "data": value, "metadata": {"name": "db"}})
    out = redact_raw(raw)
    assert b"TOPSECRET" not in out
    assert orjson.loads(out) == {"kind": "Secret", "data": "[REDACTED]", "metadata": {"name": "db"}}


def test_null_stays_null() -> None:
    assert redact_raw(b'{"data":null,"x":1}') == b'{"data":null,"x":1}'


def test_similar_keys_are_not_masked() -> None:
    raw = b'{"metadata":{"name":"db"},"userdata":"u","tokens_used":3}'
    assert redact_raw(raw) == raw


def test_pretty_printed_and_spaced_keys() -> None:
    raw = json.dumps({"stringData": {"pw": "TOPSECRET"}, "k": "v"}, indent=2).encode()
    raw = raw.replace(b'"stringData":', b'"stringData" :\n   ')
    out = redact_raw(raw)
    assert b"TOPSECRET" not in out
    assert b'"k": "v"' in out


def test_truncated_values_are_masked_at_every_cut() -> None:
    raw = b'{"eventName":"GetSecretValue","responseElements":{"SecretString":"TOPSECRET-0123"}}'
    for cut in range(len(raw) + 1):
        out = redact_raw(raw[:cut])
        assert b"TOPS" not in out, (cut, out)
        if cut > raw.index(b'"SecretString":') + len(b'"SecretString":'):
            assert out.endswith(MASK) or out.endswith(MASK + b"}") or out.endswith(MASK + b"}}")


def test_truncated_inside_nested_value() -> None:
    raw = b'{"kind":"Secret","data":{"a":"TOPSECRET","b":"TOPSEC'
    assert redact_raw(raw) == b'{"kind":"Secret","data":"[REDACTED]"'


def test_kubernetes_request_response_secret() -> None:
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "verb": "create",
        "objectRef": {"resource": "secrets", "namespace": "default", "name": "db"},
        "requestObject": {"kind": "Secret", "data": {"password": "VE9QU0VDUkVU"}},
        "responseObject": {"kind": "Secret", "data": {"password": "VE9QU0VDUkVU"}},
    }
    out = redact_raw(orjson.dumps(event))
    assert b"VE9QU0VDUkVU" not in out
    parsed = orjson.loads(out)
    assert parsed["objectRef"]["name"] == "db"
    assert parsed["requestObject"] == "[REDACTED]"


def test_clipped_to_limit() -> None:
    raw = b'{"note":"' + b"a" * 20_000 + b'"}'
    out = redact_raw(raw)
    assert out.endswith(b"...[clipped]")
    assert len(out) == MAX_RAW + len(b"...[clipped]")
    assert redact_raw(raw, limit=100) == raw[:100] + b"...[clipped]"
    assert redact_raw(b"short", limit=100) == b"short"


def test_non_json_bytes_pass_through() -> None:
    assert redact_raw(b"hello world \xff\xfe") == b"hello world \xff\xfe"
    assert redact_raw(b"") == b""


def test_dead_letter_raw_is_redacted() -> None:
    raw = b'{"Records":[{"responseElements":{"SecretString":"TOPSECRET"}}'
    letter = DeadLetter.of((raw, 7, 1234), "trail.json", "not valid JSON", "aws", "Records[0]")
    assert b"TOPSECRET" not in letter.raw
    assert (letter.file, letter.line, letter.offset) == ("trail.json", 7, 1234)
    assert letter.where() == "trail.json:7 (byte 1234) Records[0]"
