"""The Pub/Sub push collector against real HTTP senders (httpx over 127.0.0.1), pushing
Cloud Audit Log entries as Pub/Sub does: stored as the sample files are, a redelivered
message stores nothing new, bad pushes are dead letters, and a push subscription's OIDC
token is checked against a local JWKS (signed here with a test key)."""

from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from http_senders import FIXTURES, Running, client, ingest, running
from pydantic import ValidationError

from pipeline.collectors import gcp_pubsub_push
from pipeline.collectors.google_jwt import Jwks, Refused, Verifier
from pipeline.collectors.settings import GcpPubsubPush
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.sources.base import REPEATED_NOTE

GCP = FIXTURES / "gcp_audit"
GENERATED = GCP / "secretwatch__generated" / "generated.jsonl"  # 7 entries with insertId
STRATUS = GCP / "datadog__stratus-red-team"  # one pretty-printed entry, no insertId
TOKEN = "pubsub-push-test-token-0123456789"  # noqa: S105 - a test token
TOKEN_ENV = "PUSH_TOKEN"  # noqa: S105 - the name of a variable
AUTH = {"authorization": f"Bearer {TOKEN}"}
SUBSCRIPTION = "projects/prod-project/subscriptions/secretwatch-audit"
AUDIENCE = "https://secretwatch.example.com/pubsub"
PUSHER = "pubsub-push@prod-project.iam.gserviceaccount.com"


def entries() -> list[dict[str, object]]:
    return [orjson.loads(line) for line in GENERATED.read_bytes().splitlines()]


def push(entry: object, message_id: str = "1") -> bytes:
    data = base64.b64encode(orjson.dumps(entry)).decode()
    message = {
        "data": data,
        "messageId": message_id,
        "publishTime": "2026-03-02T03:12:01.000Z",
        "attributes": {"logging.googleapis.com/timestamp": "2026-03-02T03:12:00.1Z"},
    }
    return orjson.dumps({"message": message, "subscription": SUBSCRIPTION})


def settings(**extra: object) -> GcpPubsubPush:
    values: dict[str, object] = {
        "type": "gcp_pubsub_push",
        "listen": "http://127.0.0.1:0/pubsub",
        "max_body_bytes": 1 << 20,
    }
    return GcpPubsubPush.model_validate(values | extra)


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
def endpoint(tmp_path: Path) -> Running:
    with running(gcp_pubsub_push.make, settings(token_env=TOKEN_ENV), tmp_path) as r:
        yield r  # type: ignore[misc]


def post(url: str, body: bytes, headers: dict[str, str] = AUTH) -> httpx.Response:
    return client().post(url, content=body, headers=headers, timeout=30)


def test_pushed_entries_are_stored_as_the_sample_file_is(endpoint: Running, tmp_path: Path) -> None:
    for n, entry in enumerate(entries()):
        answer = post(endpoint.url, push(entry, str(n)))
        assert answer.status_code == 200, answer.text
    assert len(endpoint.spooled()) == 7
    via_push = ingest([endpoint.spool.path], "gcp", tmp_path / "push.duckdb")
    direct = ingest([GENERATED], "gcp", tmp_path / "direct.duckdb")
    assert via_push.summary.stored == direct.summary.stored > 0
    assert via_push.events.equals(direct.events)


def test_a_redelivered_message_stores_nothing_new(endpoint: Running, tmp_path: Path) -> None:
    pushes = [push(entry, str(n)) for n, entry in enumerate(entries())]
    for body in pushes + pushes[2:5]:  # Pub/Sub redelivers three (at least once)
        assert post(endpoint.url, body).status_code == 200
    assert len(endpoint.spooled()) == 10
    via_push = ingest([endpoint.spool.path], "gcp", tmp_path / "push.duckdb")
    direct = ingest([GENERATED], "gcp", tmp_path / "direct.duckdb")
    assert via_push.summary.records == 10
    assert via_push.summary.duplicates == via_push.summary.events - direct.summary.events > 0
    assert via_push.summary.stored == direct.summary.stored  # one per insertId
    assert via_push.events.equals(direct.events)


def test_an_entry_without_insert_id_and_an_unwrapped_payload(
    endpoint: Running, tmp_path: Path
) -> None:
    [sample] = STRATUS.glob("*.json")
    assert post(endpoint.url, push(orjson.loads(sample.read_bytes()))).status_code == 200
    via_push = ingest([endpoint.spool.path], "gcp", tmp_path / "push.duckdb")
    direct = ingest([sample], "gcp", tmp_path / "direct.duckdb")
    assert via_push.summary.stored == direct.summary.stored == 1
    assert via_push.events.equals(direct.events)
    unwrapped = entries()[0]  # a subscription with payload unwrapping posts the entry itself
    assert post(endpoint.url, orjson.dumps(unwrapped)).status_code == 200
    assert orjson.loads(endpoint.spooled()[-1]) == unwrapped


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b"[1, 2]", "not a Pub/Sub push"),
        (b'{"subscription": "x"}', "not a Pub/Sub push"),
        (b'{"message": {"messageId": "1"}}', "has no `data`"),
        (b'{"message": {"data": "%%% not base64 %%%"}}', "not base64 JSON"),
        (orjson.dumps({"message": {"data": _b64(b"plain text")}}), "not base64 JSON"),
        (orjson.dumps({"message": {"data": _b64(b"[1, 2]")}}), "not a LogEntry"),
    ],
)
def test_a_bad_push_is_400_and_a_dead_letter(endpoint: Running, body: bytes, reason: str) -> None:
    answer = post(endpoint.url, body)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]
    [letter] = endpoint.intake.take_dead()
    assert letter.file.startswith("collector gcp_pubsub_push: POST /pubsub from 127.0.0.1:")
    assert reason in letter.reason
    assert endpoint.spooled() == []
    assert post(endpoint.url, push(entries()[0])).status_code == 200  # and it goes on


def test_without_the_token_401_and_nothing_spooled(endpoint: Running) -> None:
    body = push(entries()[0])
    assert post(endpoint.url, body, {}).status_code == 401
    assert post(endpoint.url, body, {"authorization": "Bearer not-it-0123"}).status_code == 401
    assert endpoint.spooled() == [] and endpoint.intake.counts.unauthorized == 2


def test_oversized_push_413(tmp_path: Path) -> None:
    big = {**entries()[0], "padding": "x" * (80 << 10)}
    with running(
        gcp_pubsub_push.make,
        settings(token_env=TOKEN_ENV, max_body_bytes=64 << 10),
        tmp_path,
    ) as endpoint:
        answer = post(endpoint.url, push(big))
        assert answer.status_code == 413 and "max_body_bytes" in answer.json()["error"]
        assert endpoint.spooled() == []


def test_concurrent_pushes_all_spooled_exactly_once(endpoint: Running) -> None:
    template = entries()[0]
    bodies = [push({**template, "insertId": f"id-{n:05d}"}, str(n)) for n in range(64)]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda body: post(endpoint.url, body).status_code, bodies))
    assert codes == [200] * len(bodies)
    ids = sorted(orjson.loads(line)["insertId"] for line in endpoint.spooled())
    assert ids == [f"id-{n:05d}" for n in range(64)]


# -- the push subscription's OIDC token ----------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(keys: dict[str, rsa.RSAPrivateKey]) -> bytes:
    out = []
    for kid, key in keys.items():
        numbers = key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        out.append(
            {
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": kid,
                "n": _b64url(n),
                "e": _b64url(e),
            }
        )
    return orjson.dumps({"keys": out})


def sign(key: rsa.RSAPrivateKey, kid: str = "k1", alg: str = "RS256", **claims: object) -> str:
    now = int(time.time())
    body: dict[str, object] = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "email": PUSHER,
        "email_verified": True,
        "sub": "1234567890",
    }
    body.update(claims)
    head = _b64url(orjson.dumps({"alg": alg, "kid": kid, "typ": "JWT"}))
    payload = _b64url(orjson.dumps(body))
    signature = key.sign(f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{payload}.{_b64url(signature)}"


@pytest.fixture(scope="module")
def google_key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return new_key()


def test_oidc_token_checked_against_the_jwks_file(
    tmp_path: Path, google_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    keys = tmp_path / "google-certs.json"
    keys.write_bytes(jwks({"k1": google_key}))
    config = settings(audience=AUDIENCE, jwks_file=keys, service_account_email=PUSHER)
    with running(gcp_pubsub_push.make, config, tmp_path) as endpoint:
        body = push(entries()[0])

        def answer(token: str) -> httpx.Response:
            return post(endpoint.url, body, {"authorization": f"Bearer {token}"})

        refused = {
            "another audience": sign(google_key, aud="https://elsewhere.example.com"),
            "has expired": sign(google_key, exp=int(time.time()) - 600),
            "not issued by accounts.google.com": sign(google_key, iss="https://evil.example"),
            "another service account": sign(google_key, email="intruder@example.com"),
            "signature does not verify": sign(other_key),  # the right kid, the wrong key
            "key not in jwks_file": sign(google_key, kid="k9"),
            "not signed with RS256": sign(google_key, alg="HS256"),
            "not a JWT": TOKEN,
        }
        for why, token in refused.items():
            response = answer(token)
            assert response.status_code == 401, why
            assert why in response.json()["error"]
            assert token not in response.text
        assert post(endpoint.url, body, {}).status_code == 401
        assert endpoint.spooled() == []
        assert endpoint.intake.counts.unauthorized == len(refused) + 1

        assert answer(sign(google_key)).status_code == 200
        assert len(endpoint.spooled()) == 1

        # Google rotates its keys: the refreshed file is read on the next push
        keys.write_bytes(jwks({"k2": other_key}))
        os.utime(keys, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert answer(sign(other_key, kid="k2")).status_code == 200
        assert answer(sign(google_key)).status_code == 401
        keys.write_bytes(b"")  # a failed refresh keeps the keys read before
        os.utime(keys, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
        assert answer(sign(other_key, kid="k2")).status_code == 200
        assert len(endpoint.spooled()) == 3


def test_verifier_clock_and_leeway(tmp_path: Path, google_key: rsa.RSAPrivateKey) -> None:
    keys = tmp_path / "certs.json"
    keys.write_bytes(jwks({"k1": google_key}))
    token = sign(google_key, iat=1_000_000, exp=1_003_600)
    at = [1_003_600 + 59.0]
    verifier = Verifier(Jwks(keys), AUDIENCE, None, clock=lambda: at[0])
    verifier.verify(token)  # within a minute of exp
    at[0] = 1_003_600 + 61.0
    with pytest.raises(Refused, match="expired"):
        verifier.verify(token)
    at[0] = 1_000_000 - 61.0
    with pytest.raises(Refused, match="future"):
        verifier.verify(token)


def test_audience_config_is_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="audience needs jwks_file"):
        settings(audience=AUDIENCE)
    with pytest.raises(ValidationError, match="either audience"):
        settings(audience=AUDIENCE, jwks_file=tmp_path / "k.json", token_env=TOKEN_ENV)
    with pytest.raises(ValidationError, match="need audience"):
        settings(jwks_file=tmp_path / "k.json")
    off_machine = settings(
        listen="http://0.0.0.0:0/pubsub", audience=AUDIENCE, jwks_file=tmp_path / "k.json"
    )  # the JWT authenticates the sender off loopback
    collector = gcp_pubsub_push.make(off_machine, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k.json"):  # a missing file is refused at start
        collector.start()
    (tmp_path / "k.json").write_bytes(b'{"keys": []}')
    with pytest.raises(ConfigError, match="no RSA signing keys"):
        collector.start()


def test_the_example_config_loads() -> None:
    config = load_config(FIXTURES.parents[1] / "config" / "examples" / "serve-gcp.yaml")
    [collector] = config.collectors
    assert isinstance(collector, GcpPubsubPush)
    assert collector.audience is not None and collector.jwks_file is not None


def test_the_entry_is_spooled_as_its_own_bytes(endpoint: Running, tmp_path: Path) -> None:
    """A LogEntry that repeats a key keeps it (the stored event notes it, as from a file);
    line breaks in a pretty-printed entry become spaces."""
    line = GENERATED.read_bytes().splitlines()[0]
    twice = line.replace(b'"severity":"INFO"', b'"severity":"INFO",\n "severity":"NOTICE"', 1)
    assert twice != line
    message = {"data": _b64(twice), "messageId": "9"}
    assert post(endpoint.url, orjson.dumps({"message": message})).status_code == 200
    assert endpoint.spooled() == [twice.replace(b"\n", b" ")]
    as_file = tmp_path / "entry.jsonl"
    as_file.write_bytes(twice.replace(b"\n", b"") + b"\n")
    via_push = ingest([endpoint.spool.path], "gcp", tmp_path / "push.duckdb")
    direct = ingest([as_file], "gcp", tmp_path / "direct.duckdb")
    assert via_push.events.equals(direct.events)
    assert REPEATED_NOTE in via_push.events["note"][0]
