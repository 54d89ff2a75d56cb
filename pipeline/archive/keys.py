"""The archive's Ed25519 signing key: making one, loading it from config, fingerprints, and
signing and checking a canonical encoding. The private key is never logged: errors name
the file or variable, not the content.

>>> key = Ed25519PrivateKey.generate()
>>> body = {"b": 1, "a": [2, "x"]}
>>> canonical(body)
b'{"a":[2,"x"],"b":1}'
>>> good(key.public_key(), body, sign(key, body))
True
>>> good(key.public_key(), {**body, "b": 2}, sign(key, body))
False
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipeline.archive.settings import ArchiveSettings
from pipeline.errors import ConfigError, InputError


def canonical(record: Any) -> bytes:
    """The bytes a signature covers: JSON, keys sorted, no spaces, ASCII only."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(key: Ed25519PrivateKey, body: Any) -> str:
    return base64.b64encode(key.sign(canonical(body))).decode()


def good(public: Ed25519PublicKey, body: Any, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), canonical(body))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def keygen(out: Path) -> tuple[Path, str]:
    """Write a new private key to `out` (mode 0600, refusing to overwrite) and its public
    key beside it (`<out>.pub`); return the public key's path and fingerprint."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{out} exists; keygen never overwrites a key: choose another") from None
    except OSError as exc:
        raise InputError(f"cannot write the key to {out}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = out.with_name(out.name + ".pub")
    public.write_bytes(public_pem(key.public_key()))
    return public, fingerprint(key.public_key())


def load_private(settings: ArchiveSettings) -> Ed25519PrivateKey:
    """The signing key the config names (`key_file` or `key_env`)."""
    if settings.key_env is not None:
        where = f"environment variable {settings.key_env} (retention.archive.key_env)"
        text = os.environ.get(settings.key_env, "").strip()
        if not text:
            raise ConfigError(f"{where} is empty or unset; put the PEM from `archive keygen` in it")
        data = text.encode()
    else:
        assert settings.key_file is not None  # noqa: S101 - the settings validate one is set
        where = f"key file {settings.key_file} (retention.archive.key_file)"
        try:
            data = settings.key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{where} does not hold an unencrypted PEM private key; make one with "
            "`secretwatch archive keygen --out FILE`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_private_file(path: Path) -> Ed25519PrivateKey:
    """A private key file, as `key_file` names one."""
    return load_private(ArchiveSettings(path=path.parent, key_file=path))


def load_public(path: Path) -> Ed25519PublicKey:
    """A public key file (PEM, as `archive keygen` writes `<key>.pub`)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read public key {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise InputError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key
