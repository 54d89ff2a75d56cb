"""The `retention:` section: how long events stay hot, how long the archive keeps them,
and where the archive is and which key signs it.

>>> Retention().hot_days, Retention().archive_years, Retention().archive is None
(400, 7, True)
>>> ArchiveSettings(path="/a", key_env="SW_KEY").schedule_minutes
60
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ArchiveSettings(BaseModel):
    """Where the archive lives and the Ed25519 private key (PEM) that signs its digests,
    from a file or an environment variable; the key itself is never logged or stored."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="the archive folder (events, alerts, reports, digests)")
    key_file: Path | None = Field(None, description="Ed25519 private key, PEM (archive keygen)")
    key_env: str | None = Field(None, description="env var holding the private key PEM")
    schedule_minutes: int = Field(60, ge=1, le=10_080, description="how often serve archives")

    @model_validator(mode="after")
    def _one_key(self) -> ArchiveSettings:
        if (self.key_file is None) == (self.key_env is None):
            raise ValueError(
                "give exactly one of `key_file` (a PEM file made by `secretwatch archive "
                "keygen --out FILE`) or `key_env` (an environment variable holding it)"
            )
        return self


class Retention(BaseModel):
    """Events older than `hot_days` move to the archive (`secretwatch archive`, and `serve`
    every `archive.schedule_minutes`); archived files older than `archive_years` are
    removed only by `secretwatch archive prune`."""

    model_config = ConfigDict(extra="forbid")

    hot_days: int = Field(400, ge=1, description="days of events kept in the hot store")
    archive_years: int = Field(7, ge=1, le=100, description="years the archive keeps")
    archive: ArchiveSettings | None = None
