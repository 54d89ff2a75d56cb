"""Configuration: YAML files validated by pydantic; every error names the file, key and fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detectors.settings import DetectorsConfig
from pipeline.errors import ConfigError

DEFAULT_CONFIG = Path("config/default.yaml")
ENV_VAR = "SECRETWATCH_CONFIG"
_FORMATS = ("vault", "aws", "gcp", "azure", "k8s")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DuckDBStoreConfig(_Model):
    """The embedded store: one file, no server."""

    type: Literal["duckdb"] = "duckdb"
    path: Path = Path("data/secretwatch.duckdb")


class IngestConfig(_Model):
    batch_size: int = Field(
        150_000,
        gt=0,
        description="events per store write; >= 122,880 lets DuckDB write whole row groups",
    )
    follow_poll_seconds: float = Field(0.5, gt=0, le=60, description="follow-mode poll interval")


class Config(_Model):
    store: DuckDBStoreConfig = DuckDBStoreConfig()
    ingest: IngestConfig = IngestConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    # The `backend` name written for each source, since audit logs rarely name their own
    # cluster (Vault, Kubernetes); cloud sources name their account/project/vault themselves.
    backends: dict[str, str] = Field(default_factory=dict)

    @field_validator("backends")
    @classmethod
    def _known_sources(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(_FORMATS))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; valid: {', '.join(_FORMATS)}")
        return value


def load_config(path: str | Path | None = None) -> Config:
    """Load `path`, else $SECRETWATCH_CONFIG, else config/default.yaml if present, else
    the built-in defaults (which equal config/default.yaml)."""
    chosen = path or os.environ.get(ENV_VAR)
    if chosen is None:
        if not DEFAULT_CONFIG.exists():
            return Config()
        chosen = DEFAULT_CONFIG
    file = Path(chosen)
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
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(err["loc"][:-1])
            valid = ", ".join(parent.model_fields) if parent else ""
            lines.append(f"  {key}: unknown key; valid keys here: {valid}")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model
