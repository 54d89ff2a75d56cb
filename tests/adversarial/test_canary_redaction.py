"""Canaries: no secret value from an audit record reaches the store, an output or a log line.

Issue 14 items 4 and 6. Every record of the five formats carries a unique canary under every
secret-bearing key (Vault's `x-vault-token` and `authorization` headers, unhashed accessors
and tokens, Kubernetes `data`/`stringData` and the `last-applied-configuration` annotation,
AWS `SecretString`, and the common spellings), and in its error text. Each is written valid
and malformed (cut inside a value, bad escapes, `\\u`-escaped key names, nested too deep, the
record as JSON inside a string), then ingested through the real `Ingestor` into a DuckDB
store and through the CLI (`ingest`, `dead-letters --raw`, `events --json`). Every table of
the store, the store's files, every output and every log record are searched for the
canaries.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ENV_VAR
from pipeline.ingest import Ingestor
from pipeline.store.duckdb import DuckDBStore

T0 = "2026-05-01T03:10:00"
NOW = datetime(2026, 5, 2, tzinfo=UTC).timestamp()
# Every secret-bearing key the issue names, spelled as sources and applications spell them.
KEYS = [
    "data",
    "stringData",
    "SecretString",
    "SecretBinary",
    "secretString",
    "value",
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
]
HMAC = "hmac-sha256:" + "5e" * 32


class Canaries:
    """Unique, recognisable values (letters and digits only, so no escaping can hide one)."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._n = itertools.count()

    def __call__(self, where: str) -> str:
        value = f"zq{re.sub('[^A-Za-z0-9]', '', where)[:12]}{next(self._n):04d}CNRYx"
        self.values.append(value)
        return value

    def shaped(self, where: str, skip: frozenset[str] = frozenset()) -> dict[str, object]:
        """One canary under every key (but `skip`), some in the shape such values have in
        the wild."""
        shaped = {"private_key_pem", "connectionString", "jwt", "secretData", "data"}
        out: dict[str, object] = {
            k: self(f"{where}{k}") for k in KEYS if k not in shaped and k not in skip
        }
        out["private_key_pem"] = (
            f"-----BEGIN PRIVATE KEY-----\nMIIE{self(where + 'pem')}\n-----END PRIVATE KEY-----\n"
        )
        out["connectionString"] = f"Server=db;User Id=app;Password={self(where + 'conn')};"
        out["jwt"] = "eyJhbGciOiJIUzI1NiJ9." + self(where + "jwt") + ".c2ln"
        out["secretData"] = {"user": "app", "pw": self(where + "sdata")}
        out["data"] = {"password": self(where + "data"), "n": 1234}
        return out

    def found_in(self, text: str | bytes) -> list[str]:
        if isinstance(text, bytes):
            return [c for c in self.values if c.encode() in text]
        return [c for c in self.values if c in text]


# -- one record per format, valid -----------------------------------------------------------


def vault_pair(c: Canaries, n: int, error: str | None = None) -> list[dict]:
    def auth() -> dict:
        return {
            "client_token": c("vault auth client_token"),
            "accessor": c("vault auth accessor"),
            "display_name": "approle",
            "entity_id": "1f3b0c2a-0000-4000-8000-000000000002",
            "policies": ["default", "billing"],
            "metadata": {"role_name": "billing-worker"},
        }

    def request(token: str | None = None) -> dict:
        return {
            "id": f"11111111-1111-4111-8111-{n:012d}",
            "operation": "update",
            "mount_type": "kv",
            "mount_point": "secret/",
            "path": "secret/data/apps/billing/db",
            "client_token": token or c("vault request client_token"),
            "client_token_accessor": c("vault client_token_accessor"),
            "remote_address": "10.1.2.3",
            "headers": {
                "user-agent": ["vault-agent/1.15.2"],
                "x-vault-token": ["hvs." + c("vault x-vault-token") + "AAAAAAAAAAAA"],
                "authorization": ["Bearer " + c("vault authorization")],
            },
            **c.shaped("vault request", skip=frozenset({"client_token"})),
        }

    first = {"time": f"{T0}.{n:03d}Z", "type": "request", "auth": auth(), "request": request()}
    second = {
        "time": f"{T0}.{n + 1:03d}Z",
        "type": "response",
        "auth": auth(),
        "request": request(HMAC),  # as Vault writes it: hashed, and kept as it is
        "response": {"mount_type": "kv", **c.shaped("vault response")},
    }
    if error is not None:
        second["error"] = error
    return [first, second]


def cloudtrail(c: Canaries, n: int, failed: bool = False) -> dict:
    record = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::111122223333:assumed-role/orders-api/i-0abc",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLEKEYID",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": "arn:aws:iam::111122223333:role/orders-api",
                    "userName": "orders-api",
                }
            },
        },
        "eventTime": f"{T0}Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "PutSecretValue",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "10.20.30.40",
        "userAgent": "Boto3/1.34.0",
        "requestParameters": {"secretId": "prod/orders/db", **c.shaped("aws request")},
        "responseElements": None if failed else {"name": "x", **c.shaped("aws response")},
        "requestID": f"req-{n}",
        "eventID": f"0a000000-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    if failed:
        record["errorCode"] = "ValidationException"
        record["errorMessage"] = (
            f"1 validation error detected: Value '{c('aws errorMessage')}' at 'secretString' "
            "failed to satisfy constraint: Member must have length less than or equal to 65536"
        )
    return record


def gcp(c: Canaries, n: int, failed: bool = False) -> dict:
    secret = "projects/prod-project/secrets/db-password"  # noqa: S105 - a name
    payload = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "status": {},
        "authenticationInfo": {"principalEmail": "orders-api@prod-project.iam.gserviceaccount.com"},
        "requestMetadata": {"callerIp": "10.128.0.7", "callerSuppliedUserAgent": "gcloud/470.0.0"},
        "serviceName": "secretmanager.googleapis.com",
        "methodName": "google.cloud.secretmanager.v1.SecretManagerService.AddSecretVersion",
        "resourceName": secret,
        "request": {"parent": secret, **c.shaped("gcp request")},
        "response": {"name": f"{secret}/versions/{n}", **c.shaped("gcp response")},
    }
    if failed:
        message = f"Secret Payload '{c('gcp status message')}' is invalid"
        payload["status"] = {"code": 3, "message": message}
    return {
        "protoPayload": payload,
        "insertId": f"gcp-insert-{n}",
        "resource": {"type": "audited_resource", "labels": {"project_id": "prod-project"}},
        "timestamp": f"{T0}.{n:03d}Z",
        "severity": "INFO",
        "logName": "projects/prod-project/logs/cloudaudit.googleapis.com%2Fdata_access",
    }


def azure(c: Canaries, n: int, failed: bool = False) -> dict:
    record = {
        "time": f"{T0}.{n:07d}Z",
        "category": "AuditEvent",
        "operationName": "SecretSet",
        "resultType": "Success",
        "correlationId": f"c0ffee00-0000-4000-8000-{n:012d}",
        "callerIpAddress": "10.1.2.3",
        "identity": {"claim": {"appid": "7d8e9f00-0000-4000-8000-0000000bad01", "oid": "o-1"}},
        "properties": {
            "httpStatusCode": 200,
            "id": "https://orders-kv.vault.azure.net/secrets/db-password",
            "clientInfo": "azsdk-python-keyvault-secrets/4.8.0",
            "requestUri": "https://orders-kv.vault.azure.net/secrets/db-password?api-version=7.4",
            **c.shaped("azure properties"),
        },
        "resourceId": "/SUBSCRIPTIONS/0B1C/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/"
        "VAULTS/ORDERS-KV",
        "operationVersion": "7.4",
        "resultSignature": "OK",
        "durationMs": "17",
    }
    if failed:
        record["properties"]["httpStatusCode"] = 400  # type: ignore[index]
        record["resultSignature"] = "BadRequest"
        record["resultDescription"] = f"Value '{c('azure resultDescription')}' is not valid."
    return record


def k8s(c: Canaries, n: int, failed: bool = False) -> dict:
    def applied(where: str) -> str:
        return orjson.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db-credentials", "namespace": "payments"},
                "data": {"password": c(where + " data")},
                "stringData": {"token": c(where + " stringData")},
            }
        ).decode()

    def secret(where: str) -> dict:
        return {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {
                "name": "db-credentials",
                "namespace": "payments",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": applied(where + " lac")
                },
            },
            **c.shaped(where),
        }

    record = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"a0000000-0000-4000-8000-{n:012d}",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/payments/secrets/db-credentials",
        "verb": "update",
        "user": {"username": "system:serviceaccount:payments:payments-api", "groups": []},
        "sourceIPs": ["10.244.3.33"],
        "userAgent": "kubectl/v1.30.0",
        "objectRef": {
            "resource": "secrets",
            "apiVersion": "v1",
            "namespace": "payments",
            "name": "db-credentials",
        },
        "requestReceivedTimestamp": f"{T0}.{n:06d}Z",
        "stageTimestamp": f"{T0}.{n:06d}Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "kubectl.kubernetes.io/last-applied-configuration": applied("k8s annotation"),
        },
        "requestObject": secret("k8s requestObject"),
        "responseObject": secret("k8s responseObject"),
        "responseStatus": {"metadata": {}, "code": 200},
        **c.shaped("k8s event"),
    }
    if failed:
        message = f'Secret "db" is invalid: data[pw]: Invalid value: "{c("k8s message")}": bad'
        record["responseStatus"] = {"code": 422, "reason": "Invalid", "message": message}
    return record


# -- the same records, malformed -------------------------------------------------------------


def escape_keys(raw: bytes) -> bytes:
    """Secret-bearing key names written with a `\\u` escape (still valid JSON)."""
    names = [*KEYS, "x-vault-token", "authorization", "accessor", "client_token_accessor"]
    names.append("kubectl.kubernetes.io/last-applied-configuration")
    for key in names:
        escaped = f"\\u{ord(key[0]):04x}{key[1:]}"
        raw = raw.replace(f'"{key}":'.encode(), f'"{escaped}":'.encode())
    return raw


def malformed(raw: bytes, c: Canaries) -> list[bytes]:
    """Broken forms of one valid record line, every canary of it still inside."""
    out = []
    for canary in c.found_in(raw):  # cut just after each value's canary: a string left open
        out.append(raw[: raw.index(canary.encode()) + len(canary)])
    out.append(raw[:-1] + b',"note":"a bad \\q escape"}')
    out.append(escape_keys(raw)[:-1] + b',"note":"\\ud800 and \\u12"}')
    out.append(escape_keys(raw)[: len(raw) // 2])
    out.append(raw[:-1] + b',"deep":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    out.append(b'{"w":' * 3000 + raw + b"}" * 3000)
    wrapped = orjson.dumps({"message": raw.decode()})
    out.append(wrapped[: len(wrapped) * 2 // 3])
    return out


def line(doc: object) -> bytes:
    return orjson.dumps(doc)


def write_logs(folder: Path, c: Canaries) -> dict[str, int]:
    """One JSON-lines file per format (valid records first, so each file's format is
    detected), a CloudTrail document cut inside a value, and a file of no known format.
    Returns the number of valid event-bearing records written per format."""
    folder.mkdir(parents=True, exist_ok=True)
    vault_error = f'1 error occurred:\n\t* invalid value "{c("vault error")}" for field\n\n'
    pairs = [vault_pair(c, 0), vault_pair(c, 2, error=vault_error), vault_pair(c, 4)]
    vault_lines = [line(e) for e in pairs[0] + pairs[1]]
    vault_lines += [escape_keys(line(e)) for e in pairs[2]]
    vault_lines += malformed(line(pairs[0][0]), c) + malformed(line(pairs[0][1]), c)
    (folder / "vault-audit.log").write_bytes(b"\n".join(vault_lines) + b"\n")
    builders: dict[str, Callable[..., dict]] = {
        "cloudtrail": cloudtrail,
        "gcp": gcp,
        "azure": azure,
        "k8s": k8s,
    }
    for name, build in builders.items():
        good = [line(build(c, 1)), line(build(c, 2, failed=True)), escape_keys(line(build(c, 3)))]
        lines = good + malformed(good[0], c) + malformed(good[1], c)
        (folder / f"{name}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    trail = orjson.dumps({"Records": [cloudtrail(c, 7)]}, option=orjson.OPT_INDENT_2)
    cut = max(trail.index(v.encode()) + len(v) for v in c.found_in(trail))  # in the last value
    (folder / "trail-cut.json").write_bytes(trail[:cut])
    unknown = orjson.dumps({"app": "billing", **c.shaped("unknown")})
    (folder / "other.log").write_bytes(unknown + b"\n" + unknown[:-9] + b"\n")
    return {"vault": 3, "aws": 2, "gcp": 2, "azure": 2, "k8s": 2}


# -- what to search --------------------------------------------------------------------------


def store_dump(store: DuckDBStore) -> list[tuple[str, object]]:
    """Every cell of every table of the store, with the table it came from."""
    con = store.con
    tables = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    ]
    assert {"events", "dead_letters"} <= set(tables), tables
    cells: list[tuple[str, object]] = []
    for table in tables:
        for row in con.execute(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608 - names from the catalog
            cells.extend((table, cell) for cell in row)
    return cells


def leaks_in_store(store: DuckDBStore, c: Canaries) -> list[tuple[str, str]]:
    found = []
    for table, cell in store_dump(store):
        data = cell if isinstance(cell, bytes | bytearray | memoryview) else str(cell).encode()
        found += [(table, canary) for canary in c.found_in(bytes(data))]
    return found


def leaks_in_logs(records: list[logging.LogRecord], c: Canaries) -> list[str]:
    text = []
    for record in records:
        text.append(record.getMessage())
        if record.exc_info:
            text.append(logging.Formatter().formatException(record.exc_info))
    return c.found_in("\n".join(text))


def leaks_in_files(folder: Path, c: Canaries) -> list[tuple[str, str]]:
    return [
        (p.name, v) for p in folder.iterdir() if p.is_file() for v in c.found_in(p.read_bytes())
    ]


# -- the tests -------------------------------------------------------------------------------


def test_every_canary_is_in_the_inputs(tmp_path: Path) -> None:
    """The test's own premise: each canary is written where the test says it is."""
    c = Canaries()
    write_logs(tmp_path / "logs", c)
    text = b"".join(p.read_bytes() for p in (tmp_path / "logs").iterdir())
    missing = [v for v in c.values if v.encode() not in text]
    assert not missing
    assert len(c.values) > 500


def test_ingest_keeps_no_canary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = Canaries()
    valid = write_logs(tmp_path / "logs", c)
    caplog.set_level(logging.DEBUG)
    store = DuckDBStore(tmp_path / "store" / "s.duckdb")
    store.open()
    try:
        summary = Ingestor(store, clock=lambda: NOW).ingest([str(tmp_path / "logs")])
        # it ran to the end: every file read, the valid records stored, the rest dead letters
        assert summary.files == 7
        assert summary.records == summary.consumed + summary.skipped_records + summary.dead_records
        stored = store.events(limit=None)
        by_source = stored["source"].value_counts().to_dict()
        assert all(by_source.get(source, 0) >= n for source, n in valid.items()), by_source
        dead = store.dead_letters()
        assert len(dead) > 200
        assert {"k8s", "vault", "aws", "gcp", "azure"} <= set(dead["format"].dropna())
        assert any(b"[REDACTED]" in bytes(raw) for raw in dead["raw"] if raw is not None)
        # error text is stored, cleaned
        errors = set(stored["error"].dropna())
        assert "403 Forbidden" not in errors
        assert any("Value '…' at 'secretString'" in e for e in errors), errors
        assert leaks_in_store(store, c) == []
    finally:
        store.close()
    assert leaks_in_files(tmp_path / "store", c) == []
    assert leaks_in_logs(caplog.records, c) == []


def test_cli_keeps_no_canary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    c = Canaries()
    write_logs(tmp_path / "logs", c)
    caplog.set_level(logging.DEBUG)
    outputs = []
    for args in (
        ["ingest", "logs", "--store", "s.duckdb"],
        ["dead-letters", "--raw", "--limit", "0", "--store", "s.duckdb"],
        ["dead-letters", "--limit", "0", "--store", "s.duckdb"],
        ["events", "--json", "--limit", "0", "--store", "s.duckdb"],
        ["events", "--limit", "0", "--store", "s.duckdb"],
    ):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
        assert result.exit_code == 0, (args, result.output, result.exception)
        outputs.append(result.output)
        assert c.found_in(result.output) == [], args
    ingest, raw_letters, _, events_json, _ = outputs
    assert "dead" in ingest
    assert "[REDACTED]" in raw_letters
    events = [orjson.loads(x) for x in events_json.splitlines() if x.startswith("{")]
    assert {e["source"] for e in events} == {"vault", "aws", "gcp", "azure", "k8s"}
    assert leaks_in_logs(caplog.records, c) == []
    with DuckDBStore(tmp_path / "s.duckdb", read_only=True) as store:
        assert leaks_in_store(store, c) == []
