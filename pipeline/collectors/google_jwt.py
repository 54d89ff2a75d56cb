"""The OIDC token a Pub/Sub push subscription sends (`Authorization: Bearer <JWT>`),
checked without a network call: RS256 signed by one of Google's keys, read from a local
JWKS file (a copy of https://www.googleapis.com/oauth2/v3/certs that the operator keeps
fresh, re-read whenever it changes), issued by accounts.google.com for our audience, not
expired, and, when configured, for the push subscription's service account.

Nothing of the token is ever logged or echoed back: a refusal names the check that failed.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)
ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
LEEWAY_SECONDS = 60  # clock skew tolerated on exp and iat
MAX_TOKEN_BYTES = 16 << 10


class Refused(Exception):  # noqa: N818 - a refusal, answered 401 with its reason
    pass


def _b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Refused("the token is not a JWT (bad base64url)") from None


def _json(text: str, part: str) -> dict[str, object]:
    try:
        value = orjson.loads(_b64url(text))
    except orjson.JSONDecodeError:
        raise Refused(f"the token's {part} is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(f"the token's {part} is not a JSON object")
    return value


def _rsa_keys(raw: bytes) -> dict[str, rsa.RSAPublicKey]:
    """The RSA keys of a JWKS document by `kid`; `ConfigError` when it holds none."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"not JSON ({exc})") from None
    keys: dict[str, rsa.RSAPublicKey] = {}
    entries = doc.get("keys") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid, n, e = entry.get("kid"), entry.get("n"), entry.get("e")
        if not (isinstance(kid, str) and isinstance(n, str) and isinstance(e, str)):
            continue
        try:
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(_b64url(e), "big"), int.from_bytes(_b64url(n), "big")
            )
            keys[kid] = numbers.public_key()
        except (Refused, ValueError):
            continue
    if not keys:
        raise ConfigError('no RSA signing keys (a JWKS document is {"keys": [...]})')
    return keys


class Jwks:
    """Google's signing keys from a local JWKS file, re-read when the file changes; a file
    that turns unreadable or empty keeps the keys read before (and says so in the log)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._refresh(startup=True)

    def _refresh(self, startup: bool = False) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            keys = _rsa_keys(self.path.read_bytes())
        except (OSError, ConfigError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            if startup:
                raise ConfigError(f"jwks_file {self.path}: {why}") from None
            log.warning("jwks_file %s: %s; keeping the keys read before", self.path, why)
            return
        self._stamp, self._keys = stamp, keys

    def key(self, kid: str) -> rsa.RSAPublicKey | None:
        with self._lock:
            self._refresh()
            return self._keys.get(kid)


@dataclass(frozen=True)
class Verifier:
    """Checks push tokens for one audience (and service account, when set)."""

    jwks: Jwks
    audience: str
    email: str | None = None
    clock: Callable[[], float] = time.time

    def verify(self, token: str) -> None:
        """Returns when `token` passes every check; `Refused` naming the first that fails."""
        if len(token) > MAX_TOKEN_BYTES:
            raise Refused("the token is too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise Refused("the token is not a JWT")
        header, claims = _json(parts[0], "header"), _json(parts[1], "claims")
        if header.get("alg") != "RS256":
            raise Refused("the token is not signed with RS256")
        kid = header.get("kid")
        key = self.jwks.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Refused("the token is signed by a key not in jwks_file")
        try:
            key.verify(
                _b64url(parts[2]),
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise Refused("the token's signature does not verify") from None
        self._check(claims)

    def _check(self, claims: dict[str, object]) -> None:
        now = self.clock()
        if claims.get("iss") not in ISSUERS:
            raise Refused("the token is not issued by accounts.google.com")
        aud = claims.get("aud")
        if aud != self.audience and not (isinstance(aud, list) and self.audience in aud):
            raise Refused("the token is for another audience")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS < now:
            raise Refused("the token has expired")
        if isinstance(iat, int | float) and iat - LEEWAY_SECONDS > now:
            raise Refused("the token is issued in the future")
        if self.email is not None and (
            claims.get("email") != self.email or claims.get("email_verified") is not True
        ):
            raise Refused("the token is for another service account")
