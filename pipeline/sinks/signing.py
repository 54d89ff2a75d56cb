"""Standard Webhooks signatures (https://www.standardwebhooks.com/): sign and verify.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
HMAC-SHA256 with the secret's bytes, base64-encoded and prefixed `v1,`. Secrets are written
`whsec_` + base64 of at least 24 random bytes (`new_secret()` makes one); a secret without
the prefix is used as raw UTF-8 bytes. A receiver verifies with `verify()` (or any Standard
Webhooks library) and rejects timestamps more than 5 minutes away, which stops replays.

The spec's own example (secret, id, timestamp, body -> signature):

>>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
>>> headers = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
>>> headers["webhook-signature"]
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
>>> verify(secret, headers, b'{"test": 2432232314}', now=1614265390)
>>> verify(secret, headers, b'{"test": 1}', now=1614265390)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
SignatureError: no signature matches
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Mapping

from pipeline.errors import SecretwatchError

PREFIX = "whsec_"
TOLERANCE_S = 300


class SignatureError(SecretwatchError):
    """A webhook that must not be trusted: bad, missing or stale signature."""


def secret_bytes(secret: str) -> bytes:
    """The key: base64 after `whsec_`, else the string's own bytes."""
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX) :], validate=True)
        except binascii.Error:
            raise SignatureError(
                "a whsec_ secret must be base64 after the prefix; make one with "
                "`python -c 'from pipeline.sinks.signing import new_secret; print(new_secret())'`"
            ) from None
    return secret.encode()


def new_secret() -> str:
    """A fresh `whsec_` secret (32 random bytes)."""
    return PREFIX + base64.b64encode(_random.token_bytes(32)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: int = TOLERANCE_S,
) -> None:
    """Raise SignatureError unless one of the `v1,` signatures in the header matches and
    the timestamp is within `tolerance` seconds of `now`. Header names are case-blind."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lower.get("webhook-id"), lower.get("webhook-timestamp")
    given = lower.get("webhook-signature")
    if not msg_id or not stamp or not given:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"webhook-timestamp is more than {tolerance} s from now")
    expected = signature(secret, msg_id, timestamp, body)
    for candidate in given.split():
        if hmac.compare_digest(candidate, expected):
            return
    raise SignatureError("no signature matches")
