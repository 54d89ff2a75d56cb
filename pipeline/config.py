"""Configuration: YAML files validated by pydantic; every error names the file, key and fix."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from detectors.settings import DetectorsConfig
from pipeline.archive.settings import Retention
from pipeline.collectors.settings import (
    ApiConfig,
    CollectorConfig,
    SpoolConfig,
    check_collector_names,
)
from pipeline.configfile import DEFAULT_CONFIG, ENV_VAR, config_file  # noqa: F401 - re-exported
from pipeline.errors import ConfigError
from pipeline.limits import Limits
from pipeline.record import SOURCES  # the names only: the parsers are not needed to read a config
from pipeline.reports.settings import ReportConfig
from pipeline.sinks.settings import (
    DeliveryConfig,
    SinkConfig,
    check_names,
    default_sinks,
    loopback,
)
from pipeline.timewindow import TimeWindow

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DuckDBStoreConfig(_Model):
    """The embedded store: one file, no server."""

    type: Literal["duckdb"] = "duckdb"
    path: Path = Path("data/secretwatch.duckdb")


class ElasticsearchStoreConfig(_Model):
    """A shared Elasticsearch cluster. Secrets come from environment variables named here,
    never from the file, so configs can be committed and logged."""

    type: Literal["elasticsearch"]
    url: str = "http://127.0.0.1:9200"
    index_prefix: str = Field(
        "secretwatch", description="indices are {prefix}-events-YYYY.MM, {prefix}-alerts, ..."
    )
    username: str | None = None
    password_env: str | None = Field(None, description="env var holding the basic-auth password")
    api_key_env: str | None = Field(None, description="env var holding an encoded API key")
    ca_certs: Path | None = None
    verify_certs: bool = True
    request_timeout: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10, description="per request, on 429/5xx/connection")
    bulk_size: int = Field(5000, gt=0, le=100_000, description="events per bulk request")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "@" in value:
            raise ValueError("must not hold credentials; use username/password_env or api_key_env")
        if not re.fullmatch(r"https?://[^\s/]+/?", value):
            raise ValueError("must be http(s)://host:port, e.g. http://127.0.0.1:9200")
        return value

    @model_validator(mode="after")
    def _warn_cleartext(self) -> ElasticsearchStoreConfig:
        """Credentials to another machine over plain http: warn, as for the sinks."""
        parts = urlsplit(self.url)
        sent = [k for k in ("password_env", "api_key_env") if getattr(self, k)]
        if parts.scheme == "http" and sent and not loopback(parts.hostname):
            log.warning(
                "store (elasticsearch): `url` %s is plain http to %s: the credentials in %s "
                "would cross the network in clear text, readable and replayable by anyone on "
                "the path; use an https:// URL",
                self.url,
                parts.hostname,
                " and ".join(sent),
            )
        return self

    @field_validator("index_prefix")
    @classmethod
    def _index_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,99}", value):
            raise ValueError(
                "must be lowercase letters, digits, '.', '_' or '-', starting with a letter "
                "or digit (it starts Elasticsearch index names)"
            )
        return value


StoreConfig = Annotated[DuckDBStoreConfig | ElasticsearchStoreConfig, Field(discriminator="type")]


class IngestConfig(_Model):
    batch_size: int = Field(
        150_000,
        gt=0,
        description="events per store write; >= 122,880 lets DuckDB write whole row groups",
    )
    follow_poll_seconds: float = Field(0.5, gt=0, le=60, description="follow-mode poll interval")
    limits: Limits = Field(default_factory=Limits, description="caps on one line or file")
    time_window: TimeWindow = Field(
        default_factory=TimeWindow, description="plausible event times; others quarantined"
    )
    cloudtrail_public_key: Path | None = Field(
        None,
        description="PEM file of CloudTrail's digest public keys: ingest verifies CloudTrail "
        "log objects against the CloudTrail-Digest files beside them",
    )


class KafkaConfig(_Model):
    """The distributed flow (`secretwatch ship` / `secretwatch run`): raw audit records on a
    topic per source, normalized events keyed by identity, bad records on a dead-letter topic.
    Secrets come from the environment only (`sasl_password_env` names the variable)."""

    bootstrap_servers: str | list[str] = "127.0.0.1:9092"
    client_id: str = "secretwatch"
    raw_topic_prefix: str = Field("secretwatch.raw.", description="+ vault|aws|gcp|azure|k8s")
    events_topic: str = "secretwatch.events"
    dead_letter_topic: str = "secretwatch.dead-letter"
    group_id: str = Field("secretwatch", description="stages join <group_id>-normalize/-detect")
    partitions: int = Field(4, ge=1, description="for topics secretwatch creates")
    replication_factor: int = Field(1, ge=1, description="for topics secretwatch creates")
    batch_max_records: int = Field(5000, ge=1, description="records per poll, per stage")
    poll_timeout_ms: int = Field(200, ge=1, le=60_000)
    snapshot_seconds: float = Field(30, gt=0, description="baseline snapshot interval")
    lateness_seconds: float = Field(
        60, ge=0, description="events this much older than the stream's clock are still judged"
    )
    session_timeout_ms: int = Field(
        10_000, ge=6000, description="a killed member's partitions move after this long"
    )
    ship_state: Path = Field(
        Path("data/ship-state.json"), description="`ship --follow` file positions"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_plain_username: str | None = None
    sasl_password_env: str | None = Field(
        None, description="name of the environment variable holding the SASL password"
    )


class Config(_Model):
    store: StoreConfig = DuckDBStoreConfig()
    ingest: IngestConfig = IngestConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    report: ReportConfig = ReportConfig()
    # The `backend` name written for each source, since audit logs rarely name their own
    # cluster (Vault, Kubernetes); cloud sources name their account/project/vault themselves.
    backends: dict[str, str] = Field(default_factory=dict)
    kafka: KafkaConfig | None = None  # only `ship` and `run` need it
    # Where alerts go (`secretwatch deliver`, see pipeline/sinks/settings.py) and how.
    sinks: list[SinkConfig] = Field(default_factory=default_sinks)
    delivery: DeliveryConfig = DeliveryConfig()
    # `secretwatch serve`: what it collects from, where it spools, where its API listens.
    collectors: list[CollectorConfig] = Field(default_factory=list)
    spool: SpoolConfig = SpoolConfig()
    api: ApiConfig | None = None
    # How long events stay hot, and the signed archive they move to (pipeline/archive/).
    retention: Retention = Retention()

    @field_validator("collectors")
    @classmethod
    def _unique_collectors(cls, value: list[Any]) -> list[Any]:
        return check_collector_names(value)

    @field_validator("sinks")
    @classmethod
    def _unique_sinks(cls, value: list[Any]) -> list[Any]:
        return check_names(value)

    @field_validator("store", mode="before")
    @classmethod
    def _duckdb_by_default(cls, value: Any) -> Any:
        """`type` may be left out: the embedded store is the default."""
        if isinstance(value, dict) and "type" not in value:
            return {**value, "type": "duckdb"}
        return value

    @field_validator("backends")
    @classmethod
    def _known_sources(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; valid: {', '.join(SOURCES)}")
        return value

    def detection(self) -> DetectorsConfig:
        """The detectors' settings, with each identity's Vault policies from the inventory
        the access review reads (`report.inventory`) unless `detectors.policies` names
        them: identities holding the same policies are peers (detectors/peers.py). Read
        by the commands that judge, not at load: the others need no inventory."""
        inventory = self.report.inventory
        if self.detectors.policies or inventory is None:
            return self.detectors
        from pipeline.reports.inventory import load  # reads YAML; ConfigError if it cannot

        listed = load(None, inventory).inventory.identities
        policies = {i.identity: list(i.policies) for i in listed}
        return self.detectors.model_copy(update={"policies": policies})


def load_config(path: str | Path | None = None) -> Config:
    """Load `path`, else $SECRETWATCH_CONFIG, else config/default.yaml if present, else
    the built-in defaults (which equal config/default.yaml)."""
    file = config_file(path)
    if file is None:
        return Config()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} not found; pass an existing --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {file} must hold a mapping of sections, not {type(data).__name__}"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(file, exc)) from None


def format_errors(file: Path, exc: ValidationError) -> str:
    """One line per problem: `file: key: what is wrong; how to fix it`."""
    lines = [f"invalid config {file}:"]
    for err in exc.errors():
        parts, _ = _walk(err["loc"])
        key = ".".join(parts) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(err["loc"][:-1])
            valid = ", ".join(parent.model_fields) if parent else ""
            lines.append(f"  {key}: unknown key; valid keys here: {valid}")
        elif err["type"] == "union_tag_invalid":
            lines.append(f"  {key}.{err['ctx']['discriminator'].strip(chr(39))}: {err['msg']}")
        else:
            got = err.get("input")  # a whole section is not worth repeating
            lines.append(
                f"  {key}: {err['msg']}" + ("" if isinstance(got, dict) else f" (got {got!r})")
            )
    return "\n".join(lines)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    return _walk(loc)[1]


def _walk(loc: tuple[int | str, ...]) -> tuple[list[str], type[BaseModel] | None]:
    """The key path of an error location without pydantic's union tags (`store.path`, not
    `store.duckdb.path`), and the model at its end (None past a non-model)."""
    model: type[BaseModel] | None = Config
    parts, rest = [], [str(p) for p in loc]
    while rest:
        part = rest.pop(0)
        parts.append(part)
        field = model.model_fields.get(part) if model else None
        choices = _models(field.annotation) if field else {}
        if field and get_origin(field.annotation) is list and rest and rest[0].isdigit():
            parts[-1] = f"{part}[{rest.pop(0)}]"  # an item of a list, e.g. sinks[0]
        if len(choices) > 1 and rest and rest[0] in choices:
            model = choices[rest.pop(0)]  # a tagged union: the tag picks the model
        else:
            model = next(iter(choices.values())) if len(choices) == 1 else None
    return parts, model


def _models(annotation: Any) -> dict[str, type[BaseModel]]:
    """The models a field can hold (`KafkaConfig | None` holds one), by their `type` tag;
    for a list, the models of its items."""
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    union = get_origin(annotation) in (Union, UnionType)
    kinds = [annotation, *get_args(annotation)] if union else [annotation]
    found = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
    if len(found) == 1:
        return {"": found[0]}
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in found}
