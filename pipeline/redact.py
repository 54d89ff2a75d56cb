"""Scrub secret-bearing values out of raw bytes before they are kept anywhere.

Dead-letter records keep the raw input so an operator can fix it, but a malformed line can
still carry a Kubernetes Secret's `data`, a CloudTrail `SecretString` or a token. Every value
under a sensitive key is replaced by `"[REDACTED]"`, whatever its type, even in truncated or
broken JSON, and the result is clipped.
"""

from __future__ import annotations

import re

from pipeline.jsonscan import value_end

SENSITIVE_KEYS = (
    "data",
    "stringData",
    "SecretString",
    "SecretBinary",
    "secretString",
    "secretBinary",
    "value",
    "Value",
    "password",
    "token",
    "client_token",
    "sessionToken",
    "secretAccessKey",
    "privateKey",
    "private_key",
    "plaintext",
    "payload",
    "jwt",
    "secret_id",
    "requestObject",
    "responseObject",
)
_KEY = re.compile(rb'"(' + b"|".join(re.escape(k.encode()) for k in SENSITIVE_KEYS) + rb')"\s*:\s*')
_MASK = b'"[REDACTED]"'
MAX_RAW = 8192


def redact_raw(raw: bytes, limit: int = MAX_RAW) -> bytes:
    r"""Replace the value of every sensitive key with a mask, then clip to `limit` bytes.

    >>> redact_raw(b'{"kind":"Secret","data":{"pw":"aHVudGVyMg=="},"x":1}')
    b'{"kind":"Secret","data":"[REDACTED]","x":1}'
    >>> redact_raw(b'{"SecretString":"hunter2')
    b'{"SecretString":"[REDACTED]"'
    """
    out = bytearray()
    pos = 0
    for match in _KEY.finditer(raw):
        if match.start() < pos:
            continue  # inside a value already masked
        out += raw[pos : match.end()]
        end = value_end(raw, match.end())
        if raw[match.end() : match.end() + 4] == b"null":
            out += b"null"
        else:
            out += _MASK
        pos = end
    out += raw[pos:]
    if len(out) > limit:
        return bytes(out[:limit]) + b"...[clipped]"
    return bytes(out)
