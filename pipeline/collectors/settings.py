"""The `collectors:` list of a `serve` config: one pydantic model per collector type,
picked by `type`, validated like the rest of the config.

Receivers bind to 127.0.0.1 unless told otherwise; one that listens on any other address
must require a bearer token (`token_env` or `token_file`), or the config is refused.
Secrets are never in the file: tokens and connection strings are named by an environment
variable (`*_env`) or a file (`*_file`).

>>> parse_listen("tcp://127.0.0.1:9090")
Listen(scheme='tcp', host='127.0.0.1', port=9090, path='')
>>> parse_listen("http://127.0.0.1:9765/k8s-audit")
Listen(scheme='http', host='127.0.0.1', port=9765, path='/k8s-audit')
>>> parse_listen("unix:///run/vault-audit.sock")
Listen(scheme='unix', host='', port=0, path='/run/vault-audit.sock')
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.errors import ConfigError
from pipeline.record import Source

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_LISTEN = re.compile(
    r"^(tcp|http|unix)://(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5}))?(/.*)?$"
)


class Listen(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


def parse_listen(value: str) -> Listen:
    match = _LISTEN.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a listen address such as tcp://127.0.0.1:9090, "
            "http://127.0.0.1:9765/path or unix:///path/to.sock"
        )
    scheme, host, port, path = match[1], match[2] or "", int(match[3] or 0), match[4] or ""
    if scheme == "unix":
        if host or not path:
            raise ValueError(f"{value!r}: a unix socket is unix:///absolute/path")
    elif not host or not 0 <= port < 65536 or match[3] is None:
        raise ValueError(f"{value!r}: give a host and a port (0: any free one)")
    return Listen(scheme, host.strip("[]"), port, path)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Collector(_Model):
    name: str | None = None  # defaults to the type; names must be unique

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("must be 1-63 of a-z, 0-9, '_', '.', '-', starting alphanumeric")
        return value

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type"))  # noqa: B009 - every subclass has it


class _Receiver(_Collector):
    """A collector that listens: where, and the token a sender must present elsewhere."""

    listen: str
    token_env: str | None = None
    token_file: Path | None = None
    max_body_bytes: int = Field(16 << 20, ge=1024, le=1 << 30)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> _Receiver:
        where = parse_listen(self.listen)
        if where.scheme != "unix" and not loopback(where.host) and not self.has_token:
            raise ValueError(
                f"listens on {where.host}, not on this machine only: set token_env or "
                "token_file so that senders must present a bearer token"
            )
        return self

    @property
    def has_token(self) -> bool:
        return self.token_env is not None or self.token_file is not None

    def token(self) -> str | None:
        """The bearer token senders must present, read now; None when none is set."""
        return read_secret(self.token_env, self.token_file, f"collector {self.label}")


class VaultSocket(_Receiver):
    """Vault/OpenBao's socket audit device: JSON lines over TCP or a unix socket."""

    type: Literal["vault_socket"]
    max_line_bytes: int = Field(4 << 20, ge=1024, le=1 << 30)
    # Vault's socket device sends no token: off this machine, clients must present a
    # certificate signed by `client_ca_file` (mutual TLS) instead.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None

    @model_validator(mode="after")
    def _token_off_loopback(self) -> VaultSocket:  # replaces the receivers' token rule
        tls = (self.tls_cert_file, self.tls_key_file, self.client_ca_file)
        if any(tls) and not all(tls):
            raise ValueError("mutual TLS needs tls_cert_file, tls_key_file and client_ca_file")
        where = parse_listen(self.listen)
        if where.scheme == "tcp" and not loopback(where.host) and not self.mtls:
            raise ValueError(
                f"listens on {where.host}, not on this machine only, and Vault's socket device "
                "cannot send a token: set tls_cert_file, tls_key_file and client_ca_file so "
                "that senders must present a client certificate (mutual TLS)"
            )
        if self.mtls and where.scheme != "tcp":
            raise ValueError("mutual TLS is for tcp:// (a unix socket is guarded by its mode)")
        return self

    @property
    def mtls(self) -> bool:
        return self.client_ca_file is not None

    @field_validator("listen")
    @classmethod
    def _stream(cls, value: str) -> str:
        if parse_listen(value).scheme not in ("tcp", "unix"):
            raise ValueError("the Vault socket device speaks tcp:// or unix://")
        return value


class _HttpReceiver(_Receiver):
    # a sender gets this long to send its body, then 408: slow senders hold no connection
    # (of the server's 64) for ever
    body_seconds: float = Field(30.0, gt=0, le=3600)

    @field_validator("listen")
    @classmethod
    def _http(cls, value: str) -> str:
        if parse_listen(value).scheme != "http":
            raise ValueError("an HTTP collector listens on http://host:port/path")
        return value


class K8sWebhook(_HttpReceiver):
    """The Kubernetes audit webhook backend: `audit.k8s.io/v1` `EventList` batches."""

    type: Literal["k8s_webhook"]


class HttpNdjson(_HttpReceiver):
    """Newline-delimited JSON over HTTP POST (optionally gzip)."""

    type: Literal["http_ndjson"]
    format: Source | None = None  # None: recognized per stream, as `ingest` does


class GcpPubsubPush(_HttpReceiver):
    """A Pub/Sub push subscription's endpoint: base64 `LogEntry` messages. Senders present
    the bearer token, or, with `audience`, the OIDC JWT Pub/Sub signs for the push
    subscription's service account, checked against Google's keys in `jwks_file` (a copy
    of https://www.googleapis.com/oauth2/v3/certs, re-read when it changes)."""

    type: Literal["gcp_pubsub_push"]
    audience: str | None = None  # when set, a Google-signed JWT with this audience is required
    jwks_file: Path | None = None
    service_account_email: str | None = None  # the JWT's `email`, when set

    @model_validator(mode="after")
    def _one_way_in(self) -> GcpPubsubPush:
        if self.audience is None:
            if self.jwks_file is not None or self.service_account_email is not None:
                raise ValueError("jwks_file and service_account_email need audience")
            return self
        if self.jwks_file is None:
            raise ValueError(
                "audience needs jwks_file: a copy of Google's signing keys "
                "(https://www.googleapis.com/oauth2/v3/certs), refreshed daily"
            )
        if super().has_token:
            raise ValueError("set either audience (a signed JWT) or token_env/token_file")
        return self

    @property
    def has_token(self) -> bool:
        return super().has_token or self.audience is not None


class CloudtrailSqs(_Collector):
    """CloudTrail objects in S3, announced on an SQS queue (S3, SNS or EventBridge shape)."""

    type: Literal["cloudtrail_sqs"]
    queue_url: str
    region: str = "us-east-1"
    endpoint_url: str | None = None  # a local S3/SQS server; None: AWS
    wait_seconds: int = Field(10, ge=0, le=20)
    max_messages: int = Field(10, ge=1, le=10)
    visibility_timeout: int = Field(300, ge=0, le=43_200)
    max_object_bytes: int = Field(256 << 20, ge=1024, le=1 << 34)


class AzureEventhubs(_Collector):
    """Key Vault diagnostics from Event Hubs through its Kafka endpoint."""

    type: Literal["azure_eventhubs"]
    bootstrap: str  # <namespace>.servicebus.windows.net:9093
    topic: str  # the event hub
    group: str = "secretwatch"
    connection_string_env: str | None = None
    connection_string_file: Path | None = None
    security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"] = "SASL_SSL"
    ssl_cafile: Path | None = None
    # How long the group waits for a member that stopped answering before it hands its
    # partitions on (a killed service's successor waits this long); Event Hubs takes
    # 6 s to 300 s and Microsoft advises 30 s.
    session_timeout_ms: int = Field(30_000, ge=6_000, le=300_000)

    def connection_string(self) -> str:
        value = read_secret(
            self.connection_string_env, self.connection_string_file, f"collector {self.label}"
        )
        if value is None:
            raise ConfigError(
                f"collector {self.label}: set connection_string_env or connection_string_file"
            )
        return value


class FileCollector(_Collector):
    """Audit files followed like `tail -F` (what `ingest --follow` does)."""

    type: Literal["file"]
    paths: list[str] = Field(min_length=1)
    format: Source | None = None


CollectorSettings = (
    VaultSocket | K8sWebhook | HttpNdjson | GcpPubsubPush | CloudtrailSqs | AzureEventhubs
) | FileCollector
CollectorConfig = Annotated[CollectorSettings, Field(discriminator="type")]


class ApiConfig(_Model):
    """The service's HTTP API (queries, triage, /metrics, /healthz)."""

    listen: str = "127.0.0.1:8787"
    token_env: str | None = None
    token_file: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(f"http://{value}")
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ApiConfig:
        if not loopback(self.host) and self.token_env is None and self.token_file is None:
            raise ValueError(
                f"the API listens on {self.host}, not on this machine only: set token_env or "
                "token_file"
            )
        return self

    @property
    def host(self) -> str:
        return parse_listen(f"http://{self.listen}").host

    @property
    def port(self) -> int:
        return parse_listen(f"http://{self.listen}").port

    def token(self) -> str | None:
        return read_secret(self.token_env, self.token_file, "api")


def check_collector_names(collectors: list[CollectorSettings]) -> list[CollectorSettings]:
    seen: set[str] = set()
    for c in collectors:
        if c.label in seen:
            raise ValueError(f"two collectors are named {c.label!r}: give each a unique name")
        seen.add(c.label)
    return collectors


def read_secret(env: str | None, file: Path | None, owner: str) -> str | None:
    """A secret named by an environment variable or a file; None when neither is set."""
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{owner}: environment variable {env} is not set")
        return value.strip()
    if file is not None:
        try:
            value = file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{owner}: cannot read {file}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{owner}: {file} is empty")
        return value
    return None


class SpoolConfig(_Model):
    """Where collectors spool what they receive before it is stored (one folder each)."""

    path: Path = Path("data/spool")
    segment_bytes: int = Field(64 << 20, ge=1 << 16, le=1 << 34)
    warn_bytes: int = Field(256 << 20, ge=1 << 16)  # a spool behind by more is logged
