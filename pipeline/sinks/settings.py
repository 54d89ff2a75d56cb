"""Delivery settings: the `sinks:` list and the `delivery:` defaults of the config.

One pydantic model per sink type, picked by `type`. Secrets (tokens, keys, client secrets)
never sit in the file: each is named by an environment variable (`*_env`) or a file
(`*_file`, e.g. a mounted Kubernetes secret) and read when delivery starts.

>>> parse_duration("90s"), parse_duration("24h")
(datetime.timedelta(seconds=90), datetime.timedelta(days=1))
>>> parse_duration(2.5).total_seconds(), parse_duration("PT5M")
(2.5, 'PT5M')
"""

from __future__ import annotations

import ipaddress
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from detectors.settings import Severity

log = logging.getLogger(__name__)
PayloadFormat = Literal["native", "ecs", "ocsf"]
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def parse_duration(value: Any) -> Any:
    """`30s`, `5m`, `24h`, `7d`, `250ms` or a number of seconds; anything else is left to
    pydantic's own timedelta parsing (ISO 8601 `PT30S`, `HH:MM:SS`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        if not value.strip().upper().startswith(("P", "-P")) and ":" not in value:
            raise ValueError("must be a duration such as 250ms, 30s, 5m, 24h or 7d")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimit(_Model):
    """A token bucket: `per_second` alerts on average, bursts of up to `burst`."""

    per_second: float = Field(gt=0, le=100_000)
    burst: int = Field(1, ge=1, le=100_000)


def _secret(model: BaseModel, name: str, required: bool) -> None:
    """Exactly one of `<name>_env` / `<name>_file` (or neither, when optional)."""
    env, file = getattr(model, f"{name}_env"), getattr(model, f"{name}_file")
    if env and file:
        raise ValueError(f"set only one of {name}_env and {name}_file")
    if required and not (env or file):
        raise ValueError(
            f"set {name}_env (an environment variable holding it) or {name}_file (a file "
            "holding it); secrets are never written in the config itself"
        )


def _url(value: str) -> str:
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError("must not hold credentials; use the sink's *_env or *_file keys")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or " " in value:
        raise ValueError("must be an http(s) URL without a query, e.g. https://siem.example:8088")
    return value.rstrip("/")


class _Sink(_Model):
    """What every sink has: a name, routing filters, batching, pacing and retry limits."""

    name: str = Field(description="unique; the delivery records of this sink carry it")
    enabled: bool = True
    format: PayloadFormat = "native"
    min_severity: Severity = "low"
    detectors: list[str] | None = Field(None, description="only alerts with one of these")
    batch_size: int = Field(1, ge=1, le=1000, description="alerts per request")
    rate_limit: RateLimit | None = None
    timeout: float = Field(10.0, gt=0, le=300, description="seconds per request")
    max_attempts: int | None = Field(None, ge=1, description="overrides delivery.max_attempts")
    max_age: Duration | None = Field(None, description="overrides delivery.max_age")
    evidence_limit: int = Field(100, ge=0, le=5000, description="event ids per payload")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must be 1-63 lowercase letters, digits, '.', '_' or '-', e.g. splunk-prod"
            )
        return value


def loopback(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1: requests that never leave this machine."""
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


class _HttpSink(_Sink):
    concurrency: int = Field(4, ge=1, le=64, description="requests in flight at once")
    verify_tls: bool = True
    ca_file: Path | None = Field(None, description="CA bundle for a private certificate")
    # Per URL key, the credentials (`<name>_env`/`<name>_file`) that go to that URL with
    # every request, or what they sign or obtain: (name, what crosses the network).
    _SENDS: ClassVar[dict[str, tuple[tuple[str, str], ...]]] = {"url": ()}

    @field_validator("url", "endpoint", "authority", check_fields=False)
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    def cleartext(self) -> list[str]:
        """One warning per URL that is plain http to another machine while a credential
        goes there: anyone on the path reads it (and replays what it signs)."""
        found = []
        for key, credentials in self._SENDS.items():
            url = getattr(self, key, None)
            parts = urlsplit(url or "")
            if parts.scheme != "http" or loopback(parts.hostname):
                continue
            sent = [what.format(set_as) for name, what in credentials
                    if (set_as := self._set(name))]  # fmt: skip
            if sent:
                found.append(
                    f"sink {self.name!r} ({getattr(self, 'type', '?')}): `{key}` {url} is plain "
                    f"http to {parts.hostname}: {' and '.join(sent)} would cross the network in "
                    "clear text, readable and replayable by anyone on the path; use an "
                    "https:// URL"
                )
        return found

    def _set(self, name: str) -> str | None:
        """`<name>_env` or `<name>_file`, whichever the config sets."""
        return next((k for k in (f"{name}_env", f"{name}_file") if getattr(self, k, None)), None)

    @model_validator(mode="after")
    def _warn_cleartext(self) -> Any:
        for warning in self.cleartext():
            log.warning("%s", warning)
        return self


class WebhookSink(_HttpSink):
    """Any HTTPS receiver: JSON body signed the Standard Webhooks way."""

    type: Literal["webhook"]
    _SENDS = {"url": (("auth_token", "the bearer token ({})"),
                      ("secret", "the alerts, signed with the secret from {}"))}  # fmt: skip
    url: str
    secret_env: str | None = Field(None, description="env var with the whsec_... secret")
    secret_file: Path | None = None
    auth_token_env: str | None = Field(None, description="optional `Authorization: Bearer`")
    auth_token_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="extra, not secret")

    @model_validator(mode="after")
    def _secrets(self) -> WebhookSink:
        _secret(self, "secret", required=True)
        _secret(self, "auth_token", required=False)
        reserved = {h.lower() for h in self.headers} & {
            "authorization",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "content-type",
            "idempotency-key",
        }
        if reserved:
            raise ValueError(
                f"headers must not set {', '.join(sorted(reserved))}; secretwatch sets them "
                "(use auth_token_env for a bearer token)"
            )
        return self


class SplunkSink(_HttpSink):
    """Splunk HTTP Event Collector: /services/collector/event with a HEC token."""

    type: Literal["splunk"]
    _SENDS = {"url": (("token", "the HEC token ({})"),)}
    url: str = Field(description="the HEC base URL, e.g. https://splunk.example:8088")
    token_env: str | None = None
    token_file: Path | None = None
    index: str | None = Field(None, description="default: the token's default index")
    source: str = "secretwatch"
    sourcetype: str = "secretwatch:alert"
    host: str | None = Field(None, description="default: this machine's name")
    ack: bool = Field(False, description="wait for indexer acknowledgement")
    ack_timeout: Duration = timedelta(seconds=30)
    channel: str | None = Field(None, description="HEC channel GUID (default: derived)")
    batch_size: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _secrets(self) -> SplunkSink:
        _secret(self, "token", required=True)
        return self


class ElasticsearchSink(_HttpSink):
    """Alerts as ECS documents in an index (upserted by alert id) or a data stream."""

    type: Literal["elasticsearch"]
    _SENDS = {"url": (("api_key", "the API key ({})"), ("password", "the password ({})"))}
    url: str = "http://127.0.0.1:9200"
    index: str = "secretwatch-alerts"
    data_stream: bool = Field(False, description="append-only: one document per revision")
    format: PayloadFormat = "ecs"
    api_key_env: str | None = None
    api_key_file: Path | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    batch_size: int = Field(100, ge=1, le=1000)

    @field_validator("index")
    @classmethod
    def _index(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,200}", value):
            raise ValueError("must be a lowercase Elasticsearch index or data stream name")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> ElasticsearchSink:
        _secret(self, "api_key", required=False)
        _secret(self, "password", required=False)
        if self.username and not (self.password_env or self.password_file):
            raise ValueError("username needs password_env or password_file")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("password_env/password_file need a username")
        if self.username and (self.api_key_env or self.api_key_file):
            raise ValueError("use an API key or a username and password, not both")
        return self


class SentinelSink(_HttpSink):
    """Microsoft Sentinel through the Azure Monitor Logs Ingestion API."""

    type: Literal["sentinel"]
    _SENDS = {"authority": (("client_secret", "the client secret ({})"),),
              "endpoint": (("client_secret", "the access token got with {}"),)}  # fmt: skip
    endpoint: str = Field(description="the DCE or DCR logs ingestion endpoint URL")
    dcr_immutable_id: str = Field(description="dcr-... of the data collection rule")
    stream_name: str = Field(description="e.g. Custom-SecretwatchAlerts_CL")
    tenant_id: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    authority: str = "https://login.microsoftonline.com"
    scope: str = "https://monitor.azure.com//.default"
    batch_size: int = Field(100, ge=1, le=1000)

    @field_validator("dcr_immutable_id")
    @classmethod
    def _dcr(cls, value: str) -> str:
        if not re.fullmatch(r"dcr-[0-9a-f]{32}", value):
            raise ValueError("must be the rule's immutable id: dcr- and 32 hex digits")
        return value

    @field_validator("stream_name")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not re.fullmatch(r"(Custom|Microsoft)-[A-Za-z0-9_]+", value):
            raise ValueError("must be a DCR stream name such as Custom-SecretwatchAlerts_CL")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> SentinelSink:
        _secret(self, "client_secret", required=True)
        return self


class DatadogSink(_HttpSink):
    """Datadog Logs (/api/v2/logs) or Events (/api/v1/events) intake with DD-API-KEY."""

    type: Literal["datadog"]
    _SENDS = {"url": (("api_key", "the API key ({})"),)}
    site: str = Field("datadoghq.com", description="datadoghq.eu, us3.datadoghq.com, ...")
    url: str | None = Field(None, description="overrides the intake base URL from `site`")
    intake: Literal["logs", "events"] = "logs"
    api_key_env: str | None = None
    api_key_file: Path | None = None
    service: str = "secretwatch"
    tags: list[str] = Field(default_factory=list)
    batch_size: int = Field(50, ge=1, le=1000)

    @model_validator(mode="after")
    def _secrets(self) -> DatadogSink:
        _secret(self, "api_key", required=True)
        return self


class PagerDutySink(_HttpSink):
    """PagerDuty Events API v2: a trigger per alert, dedup_key = alert id."""

    type: Literal["pagerduty"]
    _SENDS = {"url": (("routing_key", "the routing key ({})"),)}
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: str | None = None
    routing_key_file: Path | None = None
    min_severity: Severity = "high"
    source: str | None = Field(None, description="default: this machine's name")
    resolve: bool = Field(True, description="send `resolve` when an analyst resolves it")

    @model_validator(mode="after")
    def _secrets(self) -> PagerDutySink:
        _secret(self, "routing_key", required=True)
        if self.batch_size != 1:
            raise ValueError("batch_size must be 1: the Events API takes one event a request")
        return self


class JsonlSink(_Sink):
    """A JSON-lines file: the embedded default."""

    type: Literal["jsonl"]
    path: Path = Path("data/alerts.jsonl")
    fsync: bool = Field(True, description="flush to disk before counting as delivered")
    batch_size: int = Field(100, ge=1, le=10_000)


class StdoutSink(_Sink):
    """JSON lines on standard output (for a shipper such as Vector or Fluent Bit)."""

    type: Literal["stdout"]
    batch_size: int = Field(100, ge=1, le=10_000)


# The settings of the sinks that send over HTTP, and of every sink: each sink type's model.
HttpSinkSettings = (
    WebhookSink | SplunkSink | ElasticsearchSink | SentinelSink | DatadogSink | PagerDutySink
)
SinkSettings = HttpSinkSettings | JsonlSink | StdoutSink
SinkConfig = Annotated[SinkSettings, Field(discriminator="type")]


def default_sinks() -> list[SinkSettings]:
    """The embedded default: alerts appended to data/alerts.jsonl."""
    return [JsonlSink(type="jsonl", name="alerts-file")]


def check_names(sinks: list[SinkSettings]) -> list[SinkSettings]:
    seen: set[str] = set()
    for sink in sinks:
        if sink.name in seen:
            raise ValueError(f"two sinks are named {sink.name!r}; names must be unique")
        seen.add(sink.name)
    return sinks


class DeliveryConfig(_Model):
    """How alerts leave the outbox: polling, retries, dead-lettering, breakers, folding."""

    poll_seconds: float = Field(0.2, gt=0, le=60, description="outbox poll when idle")
    max_attempts: int = Field(50, ge=1, description="then dead-letter")
    max_age: Duration = Field(timedelta(hours=24), description="since the first failure")
    backoff_base: Duration = timedelta(seconds=1)
    backoff_max: Duration = timedelta(minutes=10)
    breaker_failures: int = Field(5, ge=1, description="failed requests in a row to open it")
    breaker_cooldown: Duration = Field(timedelta(seconds=30), description="then one probe")
    suppression_window: Duration = Field(
        timedelta(days=7), description="fold repeats into the open alert; 0 turns it off"
    )

    @model_validator(mode="after")
    def _order(self) -> DeliveryConfig:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")
        for name in ("max_age", "backoff_base", "breaker_cooldown"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be > 0")
        if self.suppression_window < timedelta(0):
            raise ValueError("suppression_window must be >= 0 (0 turns folding off)")
        return self
