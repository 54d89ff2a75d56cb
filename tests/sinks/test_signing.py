"""Standard Webhooks signatures: what a receiver following the README checks."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.sinks.signing import SignatureError, new_secret, secret_bytes, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_767_225_600


def test_the_recipe_in_the_readme() -> None:
    """Computed by hand as a receiver in another language would."""
    body = b'{"type":"secretwatch.alert"}'
    headers = sign(SECRET, "swa-1.r1", NOW, body)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, b"swa-1.r1." + str(NOW).encode() + b"." + body, hashlib.sha256)
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest.digest()).decode()


@given(st.binary(max_size=2000), st.text(min_size=1, max_size=40).filter(str.strip))
def test_any_body_round_trips(body: bytes, msg_id: str) -> None:
    verify(SECRET, sign(SECRET, msg_id.strip(), NOW, body), body, now=NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, b: (h, b + b" "), "no signature matches"),
        (lambda h, b: ({**h, "webhook-id": "swa-2.r1"}, b), "no signature matches"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b), "no signature matches"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW - 301)}, b), "more than 300 s"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "not an integer"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing"),
    ],
)
def test_tampering_and_replays_are_refused(change, message: str) -> None:
    body = b'{"id":"swa-1"}'
    headers, body = change(sign(SECRET, "swa-1.r1", NOW, body), body)
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, headers, body, now=NOW)


def test_a_stale_message_is_refused_even_when_signed() -> None:
    headers = sign(SECRET, "swa-1.r1", NOW - 600, b"{}")
    with pytest.raises(SignatureError, match="more than"):
        verify(SECRET, headers, b"{}", now=NOW)
    verify(SECRET, headers, b"{}", now=NOW, tolerance=900)


def test_any_of_several_signatures_may_match_for_key_rotation() -> None:
    old = new_secret()
    headers = sign(SECRET, "m", NOW, b"{}")
    rotated = {
        **headers,
        "Webhook-Signature": sign(old, "m", NOW, b"{}")["webhook-signature"]
        + " "
        + headers["webhook-signature"],
    }
    del rotated["webhook-signature"]
    verify(SECRET, rotated, b"{}", now=NOW)  # header names are case-blind
    with pytest.raises(SignatureError):
        verify(new_secret(), rotated, b"{}", now=NOW)


def test_secret_formats() -> None:
    fresh = new_secret()
    assert fresh.startswith("whsec_") and len(secret_bytes(fresh)) == 32
    assert secret_bytes("plain-secret") == b"plain-secret"
    with pytest.raises(SignatureError, match="base64"):
        secret_bytes("whsec_not base64!")
