"""What counts as evidence that a secret's value was replaced, per source.

Not every write is a rotation: tagging a secret, changing its resource policy or moving
a version label leaves the value as it was, so only operations that store a new value
(or ask the backend to rotate one) count. The parsers keep each source's raw operation
name, which is what this table keys on.
"""

from __future__ import annotations

import re

# source -> raw operations that replace the value (action `write` or `rotate`).
NEW_VALUE: dict[str, frozenset[str]] = {
    # KV writes (create/update/patch of secret/data/x) and rotate endpoints; Vault KV
    # metadata writes cannot be told apart here (the parser maps both to `secret/x`).
    "vault": frozenset({"create", "update", "patch"}),
    "aws": frozenset(
        {
            "RotateSecret",
            "RotationSucceeded",
            "PutSecretValue",
            "UpdateSecret",
            "CreateSecret",
            "PutParameter",
        }
    ),
    "gcp": frozenset({"AddSecretVersion"}),
    "azure": frozenset(
        {
            "SecretSet",
            "SecretRotate",
            "KeyRotate",
            "KeyCreate",
            "KeyImport",
            "CertificateCreate",
            "CertificateImport",
        }
    ),
    "k8s": frozenset({"create", "update", "patch"}),
}

# Vault paths whose reads mint fresh credentials: nothing to rotate.
_DYNAMIC = re.compile(r"/(creds|sts|issue|sign)/")
_VAULT_ROTATE_ROLE = re.compile(r"^(.*/)rotate-role/(.+)$")


def is_new_value(source: str, action: str, operation: str) -> bool:
    """True if a successful event with this action and operation replaced the value.

    >>> is_new_value("aws", "write", "PutSecretValue"), is_new_value("aws", "write", "TagResource")
    (True, False)
    >>> is_new_value("vault", "rotate", "update")
    True
    """
    if action == "rotate":
        return True
    return action == "write" and operation in NEW_VALUE.get(source, frozenset())


def rotated_secret(source: str, secret: str) -> str:
    """The secret a rotate endpoint rotates: Vault `database/rotate-role/x` rotates the
    static role read at `database/static-creds/x`; anything else names itself.

    >>> rotated_secret("vault", "database/rotate-role/orders")
    'database/static-creds/orders'
    """
    if source == "vault":
        match = _VAULT_ROTATE_ROLE.match(secret)
        if match:
            return f"{match[1]}static-creds/{match[2]}"
    return secret


def is_dynamic(source: str, secret: str, kv_mounts: tuple[str, ...] | list[str] = ()) -> bool:
    """Credentials minted per read (Vault `<mount>/creds/*`, `aws/sts/*`, PKI issue/sign
    outside KV mounts): exempt from rotation, since every read gets a fresh one.

    >>> is_dynamic("vault", "database/creds/orders")
    True
    >>> is_dynamic("vault", "secret/creds/x", ["secret/"])
    False
    """
    if source != "vault" or any(secret.startswith(m) for m in kv_mounts):
        return False
    return bool(_DYNAMIC.search(secret))
