"""The `report:` section of the configuration: windows, thresholds and where the
ownership, inventory and policy evidence lives."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ReportConfig(BaseModel):
    """How `secretwatch report` judges a review period."""

    model_config = ConfigDict(extra="forbid")

    # Quarters start at local midnight in this zone, and the page shows times in it.
    timezone: str = Field(default="UTC")
    # A secret with no successful read this long before the period's end is unused.
    unused_days: int = Field(default=90, ge=1)
    # A secret with no new value this long before the period's end needs rotation.
    rotation_days: int = Field(default=90, ge=1)
    # A source silent longer than this is a coverage gap (daily buckets: at least 24).
    # A float default: defaults are not validated, and an int 24 here would enter the
    # manifest's parameters as `24` while a validated config (the CLI's) gives `24.0`,
    # so the same settings would hash differently depending on how they were built.
    gap_hours: float = Field(default=24.0, ge=24)
    owners: Path | None = Path("config/owners.yaml")
    inventory: Path | None = None
    policies_dir: Path | None = None
    vault_addr: str | None = None  # read ACL policies from this Vault (token: $VAULT_TOKEN)
    kv2_mounts: list[str] = Field(default_factory=lambda: ["secret/"])
    # Over-broad: at least this many times as many secrets granted as used ...
    overbroad_factor: float = Field(default=3.0, gt=1)
    # ... and at least this many granted but unused.
    overbroad_min_unused: int = Field(default=3, ge=1)
    # Rows per table on the page; the CSV and JSON files hold all.
    html_rows: int = Field(default=200, ge=10)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value

    @field_validator("kv2_mounts")
    @classmethod
    def _mounts_end_in_slash(cls, value: list[str]) -> list[str]:
        return [m if m.endswith("/") else m + "/" for m in value]
