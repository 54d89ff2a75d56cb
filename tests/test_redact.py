"""Redaction of raw bytes kept in dead letters: secret values never survive."""

from __future__ import annotations

import json

import orjson
import pytest

from pipeline.errortext import clean_error
from pipeline.redact import MAX_RAW, redact_raw
from pipeline.secret_keys import SENSITIVE_KEYS
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


# -- issue 14 item 4: keys the exact list missed, parsing, and the scrub of broken bytes --------

HMAC = "hmac-sha256:" + "0123456789abcdef" * 4
CANARY = "CANARY-7f3a9"
BARE = "CANARY7f3a9"  # for credential shapes made of letters and digits only
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + CANARY + "\nAbCdEf==\n"
    "-----END RSA PRIVATE KEY-----\n"
)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJDQU5BUlktN2YzYTkifQ.c2lnbmF0dXJlLUNBTkFSWQ"
NEW_KEYS = [
    "secretValue",
    "connectionString",
    "secretData",
    "apiKey",
    "ClientSecret",
    "PrivateKey",
    "Token",
    "access_token",
    "api_key",
    "secret",
    "private_key_pem",
    "x-vault-token",
    "authorization",
    "accessor",
    "client_token_accessor",
    "kubectl.kubernetes.io/last-applied-configuration",
    "PASSWORD",
    "Password",
    "STRINGDATA",
]


def _cuts(raw: bytes) -> list[bytes]:
    """The document cut at every byte from the first canary character on."""
    start = raw.index(b"CANARY")
    return [raw[:cut] for cut in range(start + 1, len(raw) + 1)]


@pytest.mark.parametrize("key", NEW_KEYS)
def test_common_spellings_and_any_case_are_masked(key: str) -> None:
    raw = orjson.dumps({"before": "kept-1", key: f"{CANARY}-value", "after": "kept-2"})
    out = redact_raw(raw)
    assert CANARY.encode() not in out
    assert orjson.loads(out) == {"before": "kept-1", key: "[REDACTED]", "after": "kept-2"}
    for cut in _cuts(raw):  # truncated anywhere inside the value: the pattern scrub
        assert b"CANARY" not in redact_raw(cut), cut


def test_vault_headers_and_unhashed_accessors() -> None:
    entry = {
        "type": "request",
        "auth": {"client_token": HMAC, "accessor": f"{CANARY}-acc", "display_name": "token"},
        "request": {
            "id": "r-1",
            "path": "secret/data/app",
            "client_token": HMAC,
            "client_token_accessor": f"{CANARY}-cta",
            "headers": {
                "x-vault-token": [f"hvs.{CANARY}AAAAAAAAAAAAAAAAAAAAAAAA"],
                "authorization": [f"Bearer {CANARY}"],
                "user-agent": ["curl/8.5"],
            },
        },
    }
    out = redact_raw(orjson.dumps(entry))
    assert CANARY.encode() not in out
    doc = orjson.loads(out)
    # hashed values and the names the parser reads are kept as they are
    assert doc["auth"]["client_token"] == HMAC
    assert doc["request"]["client_token"] == HMAC
    assert (doc["auth"]["display_name"], doc["request"]["path"]) == ("token", "secret/data/app")
    assert doc["request"]["headers"]["user-agent"] == ["curl/8.5"]


def test_hmac_values_under_secret_keys_are_kept() -> None:
    raw = orjson.dumps({"client_token": HMAC, "accessor": HMAC, "data": {"pw": HMAC}})
    out = orjson.loads(redact_raw(raw))
    assert (out["client_token"], out["accessor"], out["data"]) == (HMAC, HMAC, "[REDACTED]")
    # only a whole, well-formed hash is kept
    for fake in ("hmac-sha256:" + CANARY, HMAC + CANARY, HMAC[:30] + CANARY):
        assert CANARY.encode() not in redact_raw(orjson.dumps({"client_token": fake}))


def test_unicode_escaped_key_names() -> None:
    raw = b'{"\\u0070assword":"CANARY-1","Secret\\u0053tring":"CANARY-2","x":"kept"}'
    out = redact_raw(raw)
    assert b"CANARY" not in out
    assert orjson.loads(out)["x"] == "kept"
    for cut in _cuts(raw):
        assert b"CANARY" not in redact_raw(cut), cut


def test_last_applied_configuration_annotation() -> None:
    applied = orjson.dumps(
        {"apiVersion": "v1", "kind": "Secret", "data": {"pw": CANARY}, "stringData": {"u": CANARY}}
    ).decode()
    event = {
        "kind": "Event",
        "objectRef": {"resource": "secrets", "name": "db"},
        "requestObject": {"kind": "Secret"},
        "responseStatus": {"metadata": {}, "code": 200},
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}},
    }
    raw = orjson.dumps(event)
    out = redact_raw(raw)
    assert CANARY.encode() not in out
    assert orjson.loads(out)["objectRef"] == {"resource": "secrets", "name": "db"}
    for cut in _cuts(raw):
        assert b"CANARY" not in redact_raw(cut), cut


def test_json_inside_strings_is_redacted_and_stays_valid() -> None:
    inner = orjson.dumps({"kind": "Secret", "Password": CANARY, "name": "db"}).decode()
    twice = orjson.dumps({"wrapped": inner}).decode()
    raw = orjson.dumps({"message": inner, "outer": twice, "note": "kept"})
    out = redact_raw(raw)
    assert CANARY.encode() not in out
    doc = orjson.loads(out)
    assert orjson.loads(doc["message"]) == {
        "kind": "Secret",
        "Password": "[REDACTED]",
        "name": "db",
    }
    assert orjson.loads(orjson.loads(doc["outer"])["wrapped"])["name"] == "db"
    assert doc["note"] == "kept"
    for cut in _cuts(raw):
        assert b"CANARY" not in redact_raw(cut), cut


@pytest.mark.parametrize(
    "value",
    [
        f"token hvs.{CANARY}AAAAAAAAAAAAAAAAAAAAAAAAAAAA was revoked",
        f"legacy s.{BARE}abcdefghijklmnop1234",
        f"Authorization: Bearer {CANARY}.abc",
        f"got {JWT} from the client",
        f"key {PEM} in the body",
        f"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfi{BARE}A",
        f"dsn postgres://app:x@db/app?password={CANARY}&sslmode=require",
    ],
)
def test_credential_shapes_in_other_strings(value: str) -> None:
    raw = orjson.dumps({"note": value, "kind": "Event"})
    out = redact_raw(raw)
    assert b"CANARY" not in out
    assert b"Q0FOQVJZ" not in out  # nor the canary in base64 (the JWT's payload)
    assert orjson.loads(out)["kind"] == "Event"
    broken = raw[:-2]  # the same bytes, not JSON any more
    assert b"CANARY" not in redact_raw(broken)
    escaped = raw.replace(b"CANARY", b"\\u0043ANARY")  # escapes decoded before matching
    assert b"ANARY" not in redact_raw(escaped)


def test_escaped_keys_inside_broken_strings() -> None:
    raw = b'{"message":"{\\"kind\\":\\"Secret\\",\\"data\\":{\\"pw\\":\\"CANARY\\"},\\"x\\":1}"}'
    for cut in _cuts(raw):
        assert b"CANARY" not in redact_raw(cut), cut
    double = b'{"m":"{\\"n\\":\\"{\\\\\\"password\\\\\\":\\\\\\"CANARY\\\\\\"}\\"}"}'
    assert orjson.loads(orjson.loads(orjson.loads(double)["m"])["n"]) == {"password": "CANARY"}
    for cut in _cuts(double):
        assert b"CANARY" not in redact_raw(cut), cut


def test_names_are_not_values() -> None:
    """Resource names, secret ids, paths and Vault's other fields are kept as they are."""
    raw = orjson.dumps(
        {
            "objectRef": {"resource": "secrets", "name": "db-secret", "namespace": "secret"},
            "requestParameters": {"secretId": "prod/db/secret", "SecretId": "x"},
            "request": {"path": "secret/data/token", "mount_point": "secret/", "operation": "read"},
            "auth": {
                "display_name": "token",
                "token_type": "service",
                "token_ttl": 3600,
                "metadata": {"service_account_secret_name": "db-token", "role": "secret"},
            },
            "verb": "get",
            "user": {"username": "system:serviceaccount:secret:token"},
        }
    )
    assert redact_raw(raw) == raw
    spaced = json.dumps(orjson.loads(raw), indent=2).encode()
    assert redact_raw(spaced) == spaced  # bytes kept as written, not re-serialized


def test_deep_nesting_never_raises() -> None:
    deep = b"[" * 100_000 + b'{"password":"CANARY"}' + b"]" * 100_000
    out = redact_raw(deep, limit=1_000_000)
    assert b"CANARY" not in out
    assert redact_raw(b'{"a":' * 100_000 + b'"x"' + b"}" * 100_000).startswith(b'{"a":{"a":')
    inner = "x"
    for _ in range(12):  # JSON in a string in a string ... 12 levels down (escapes double)
        inner = orjson.dumps({"password": CANARY, "next": inner}).decode()
    assert CANARY.encode() not in redact_raw(orjson.dumps({"m": inner}), limit=10_000_000)


def test_long_input_is_clipped_after_redaction() -> None:
    raw = orjson.dumps({"note": "a" * 100_000, "password": CANARY, "tail": "b" * 100_000})
    out = redact_raw(raw)
    assert out.endswith(b"...[clipped]")
    assert len(out) == MAX_RAW + len(b"...[clipped]")
    big = b'{"password":"' + b"C" * 5_000_000 + b'","x":1}'
    assert redact_raw(big) == b'{"password":"[REDACTED]","x":1}'


def test_redaction_is_idempotent() -> None:
    raw = orjson.dumps({"password": CANARY, "note": f"Bearer {CANARY}", "m": '{"token":"x"}'})
    once = redact_raw(raw)
    assert redact_raw(once) == once
    assert redact_raw(once[:-3]) == once[:-3]


def test_sink_scrubber_uses_the_same_redaction() -> None:
    from pipeline.sinks.base import Scrubber

    answer = f'{{"error":"bad credentials","Authorization":"Bearer {CANARY}","hint":"{JWT}"}}'
    clean = Scrubber("s3cr3t-token")(answer + " s3cr3t-token")
    assert CANARY not in clean
    assert "s3cr3t-token" not in clean
    assert "bad credentials" in clean


# -- issue 14 item 6: error text from the sources is stored cleaned -----------------------------


def test_clean_error_reduces_the_validation_shape() -> None:
    text = (
        "1 validation error detected: Value 'hunter2-CANARY' at 'secretString' failed to "
        "satisfy constraint: Member must have length less than or equal to 65536"
    )
    assert clean_error(text) == (
        "1 validation error detected: Value '…' at 'secretString' failed to "
        "satisfy constraint: Member must have length less than or equal to 65536"
    )
    two = (
        "2 validation errors detected: Value '[CANARY-a, b]' at 'secretIdList' failed to "
        "satisfy constraint: x; Value null at 'filters.1.member.values' failed to satisfy "
        "constraint: y"
    )
    assert clean_error(two) == (
        "2 validation errors detected: Value '…' at 'secretIdList' failed to satisfy "
        "constraint: x; Value '…' at 'filters.1.member.values' failed to satisfy constraint: y"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'secrets "db-CANARY" is forbidden: User "x" cannot get resource "secrets" in group ""',
            'secrets "…" is forbidden: User "…" cannot get resource "…" in group ""',
        ),
        (
            "The user, group or application 'appid=CANARY;oid=1' does not have secrets get "
            "permission on key vault 'orders-kv'.",
            "The user, group or application '…' does not have secrets get permission on key "
            "vault '…'.",
        ),
        ("doesn't exist: `CANARY`, it's 'CANARY's'", "doesn't exist: `…`, it's '…'"),
        ('Secret "db" is invalid: data[pw]: Invalid value: "CANARY": bad', None),
        ("bad value 'CANARY-cut", "bad value '…"),
        ('cut "CANARY', 'cut "…'),
        ("invalid token hvs.CANARYAAAAAAAAAAAAAAAAAAAAAAA", "invalid token [REDACTED]"),
        ("header Authorization: Bearer CANARY.abc.def rejected", None),
        ("login failed: password=CANARY;user=app", "login failed: password=[REDACTED];user=app"),
        ("1 error occurred:\n\t* permission denied\n\n", None),
        ("ThrottlingException: Rate exceeded", "ThrottlingException: Rate exceeded"),
        ("", None),
        (None, None),
    ],
)
def test_clean_error_removes_quoted_values_and_tokens(
    text: str | None, expected: str | None
) -> None:
    out = clean_error(text)
    if not text:
        assert out is None
    elif "CANARY" not in text:
        assert out == text  # nothing to remove: kept as it was
    elif expected is not None:
        assert out == expected
    assert out is None or "CANARY" not in out


def test_clean_error_is_bounded() -> None:
    out = clean_error("x" * 100_000 + " 'CANARY'")
    assert out is not None and len(out) <= 4096 and "CANARY" not in out
    assert clean_error("'a" * 50_000) is not None  # no pathological backtracking


def test_an_object_under_secret_keeps_only_its_names() -> None:
    """A key named `secret` often holds a reference (a pod volume, a GCP Secret resource):
    its names stay, every other value in it is masked."""
    pod = {
        "volumes": [
            {"name": "creds", "secret": {"secretName": "db-creds", "defaultMode": 420}},
            {"name": "x", "secret": {"secretName": "y", "token": CANARY, "extra": [CANARY, 7]}},
        ],
        "gcp": {"secret": {"name": "projects/p/secrets/s", "labels": {"team": CANARY}}},
        "flat": {"secret": CANARY, "empty": {"client_token": ""}},
    }
    out = orjson.loads(redact_raw(orjson.dumps(pod)))
    assert CANARY not in orjson.dumps(out).decode()
    assert out["volumes"][0] == pod["volumes"][0]
    assert out["volumes"][1]["secret"]["secretName"] == "y"
    assert out["gcp"]["secret"]["name"] == "projects/p/secrets/s"
    assert out["flat"] == {"secret": "[REDACTED]", "empty": {"client_token": ""}}


def test_error_messages_in_dead_letters_lose_quoted_values() -> None:
    """The error text a record carries is cleaned in its dead letter as on its event."""
    doc = {
        "errorCode": "ValidationException",
        "errorMessage": f"1 validation error detected: Value '{CANARY}' at 'secretString' failed",
        "responseStatus": {"code": 422, "message": f'Invalid value: "{CANARY}": bad'},
        "error": f"1 error occurred:\n\t* invalid value '{CANARY}'",
        "resultDescription": f"Value '{CANARY}' is not valid.",
        "message": '{"kind":"Status","reason":"Invalid"}',  # JSON in a message stays JSON
    }
    raw = orjson.dumps(doc)
    out = redact_raw(raw)
    assert CANARY.encode() not in out
    parsed = orjson.loads(out)
    assert parsed["errorMessage"] == (
        "1 validation error detected: Value '…' at 'secretString' failed"
    )
    assert parsed["message"] == doc["message"]
    for cut in _cuts(raw):
        assert b"CANARY" not in redact_raw(cut), cut


@pytest.mark.parametrize(
    "line",
    [
        f"<134>May  1 03:10:00 vault[812]: level=warn SecretString={BARE} user=bob",
        f"ts=2026-05-01 api-key: {BARE} path=secret/data/x",
        f"GET /v1/secret/data/x?token={BARE}&version=2 HTTP/1.1",
        f"x-vault-token: hvs.{BARE}AAAAAAAAAAAAAAAA",
    ],
)
def test_text_that_is_not_json(line: str) -> None:
    out = redact_raw(line.encode())
    assert BARE.encode() not in out
    assert out.startswith(line.encode()[:8])  # the rest of the line stays readable
