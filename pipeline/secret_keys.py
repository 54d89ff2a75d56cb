"""Which keys carry secret values (masked whole) and which carry names or free text: the
data `pipeline.redact` classifies keys by, kept apart from its walking and scrubbing so the
lists can be read and extended on their own. Keys are compared after decoding escapes,
ignoring case.
"""

from __future__ import annotations

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
    # Vault request headers and token accessors (kept when HMAC'd)
    "x-vault-token",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "accessor",
    "client_token_accessor",
    # a JSON string holding the object as applied, `data` and `stringData` included
    "kubectl.kubernetes.io/last-applied-configuration",
    "secretValue",
    "secretData",
    "connectionString",
    "apiKey",
    "api_key",
    "x-api-key",
    "ClientSecret",
    "client_secret",
    "PrivateKey",
    "private_key_pem",
    "Token",
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "session_token",
    "secret",
    "secret_key",
    "secretKey",
    "aws_secret_access_key",
    "passwd",
    "pwd",
    "passphrase",
    "credentials",
    # the same with hyphens, and a few the clouds' own APIs return
    "api-key",
    "client-secret",
    "access-token",
    "refresh-token",
    "auth-token",
    "auth_token",
    "authToken",
    "x-auth-token",
    "x-amz-security-token",
    "private-key",
    "secret-key",
    "sas_token",
    "sasToken",
    "accountKey",
    "sharedAccessKey",
    "secret_id_accessor",
    "wrapping_token",
    "privateKeyData",
    "passwordData",
)
# Matched after decoding escapes, ignoring case: `Password`, `\u0070assword`, `TOKEN`.
SENSITIVE = frozenset(k.lower() for k in SENSITIVE_KEYS)
LONGEST_KEY = max(len(k) for k in SENSITIVE)

# Keys whose strings are free text that may quote a value: quoted substrings are removed.
TEXT_KEYS = frozenset(
    "error errors errormessage error_message message statusmessage resultdescription".split()
)

# Under a key named `secret`, an object is often a reference rather than a value (a Kubernetes
# volume's `{"secretName": ...}`, a GCP Secret resource, a Vault lease): it is walked, and only
# the fields that name things keep their values; every other string or number in it is masked.
NAME_KEYS = frozenset(
    "name secretname namespace key path mode defaultmode optional items kind apiversion type "
    "location createtime expiretime etag lease_id lease_duration renewable".split()
)
