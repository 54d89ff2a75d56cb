"""Detector settings: the `detectors:` section of the config, validated by pydantic.

Each detector has an `enabled` switch, a `threshold` on its own score and a `severity`; the
defaults are what `config/default.yaml` states. Scores are ratios to the identity's own norm
(or, for the yes/no signals, a 0-1 confidence), so one threshold fits services of any size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColdStart(_Model):
    """An identity with less history than this is new: only the detectors that need no
    history about it (root token, unexpected accessor, absolute denied/enumeration floors)
    judge it, so a freshly deployed service is not alarmed by its first days."""

    min_active_days: int = Field(7, ge=1, description="days with any activity")
    min_span_days: int = Field(14, ge=1, description="days from first to latest event")


class UnusualTime(_Model):
    enabled: bool = True
    threshold: float = Field(0.6, gt=0, le=1)
    severity: Severity = "medium"
    # An hour counts as unused when the identity was active in it (or the hours beside it)
    # in fewer than this fraction of the weeks, or of the same kind of day, it was seen.
    max_usage: float = Field(0.03, gt=0, lt=1)
    # A service doing exactly its usual work (known secrets, known networks, usual volume)
    # at a new hour has most likely been rescheduled: its score is multiplied by this.
    routine_factor: float = Field(0.5, ge=0, le=1)
    # Someone active at rare hours on this share of their days (an on-call engineer) is not
    # judged by the hour alone: the score falls to 0 as their history approaches it.
    irregular_share: float = Field(0.1, gt=0, le=1)


class RateSpike(_Model):
    enabled: bool = True
    threshold: float = Field(3.0, gt=1, description="x the busiest comparable hour")
    severity: Severity = "medium"
    min_count: int = Field(30, ge=1, description="requests in the hour, at least")


class UnexpectedAccessor(_Model):
    enabled: bool = True
    threshold: float = Field(0.5, gt=0, le=1)
    severity: Severity = "high"
    # A secret read by at least this share of all identities (and `common_min` of them) is
    # shared configuration, not another team's.
    common_fraction: float = Field(0.25, gt=0, le=1)
    common_min: int = Field(6, ge=2)
    # Readers whose own home folders (where each reads most) number this many or more make a
    # secret shared across teams.
    shared_homes: int = Field(3, ge=2)
    # A secret only people have read (often whoever set it up) is not another service's:
    # its score is multiplied by this.
    people_only_factor: float = Field(0.4, ge=0, le=1)
    # A secret the identity's peers (same namespace, role path, team or home folder) read
    # routinely is much less surprising: its score is multiplied by this. A peer reads it
    # routinely when it read it and reads its folder at least `routine_reads` times.
    peer_factor: float = Field(0.5, ge=0, le=1)
    routine_reads: int = Field(10, ge=1)


class DeniedBurst(_Model):
    enabled: bool = True
    threshold: float = Field(2.0, gt=1, description="x the identity's worst window so far")
    severity: Severity = "medium"
    min_denied: int = Field(5, ge=1, description="denied requests in one window, at least")


class Enumeration(_Model):
    enabled: bool = True
    threshold: float = Field(2.0, gt=1, description="x the most secrets it touched in a window")
    severity: Severity = "high"
    min_distinct: int = Field(15, ge=2, description="distinct secrets in one window, at least")
    min_novel: int = Field(10, ge=2, description="never-touched secrets in one window")


class ColdEnumeration(_Model):
    """An identity with no (or too little) history that reads many secrets at once: fresh
    credentials mapping a backend. Published rules (Panther, Elastic) fire at 20 distinct
    secrets; a listing just before makes fewer enough, as a service that starts up knows its
    secrets and does not list them."""

    enabled: bool = True
    threshold: float = Field(1.0, gt=0, description="x the distinct secrets needed")
    severity: Severity = "high"
    min_distinct: int = Field(20, ge=2, description="distinct secrets read first in the window")
    window_seconds: int = Field(60, ge=1, le=3600, description="sliding window")
    after_list: int = Field(10, ge=2, description="distinct secrets enough after a listing")
    list_lookback_minutes: float = Field(5, ge=0, le=60, description="a listing this close")
    # A read by filter or path with no secret list in the record (BatchGetSecretValue by tag,
    # GetParametersByPath) reads an unknown number of secrets: alert on it from a new identity.
    bulk_reads: bool = True


class SustainedRate(_Model):
    """Requests held well above the seasonal norm for hours: a moderate, steady rise (a
    scraper paced at 3-5x) that never makes the sharp peak rate_spike looks for."""

    enabled: bool = True
    threshold: float = Field(2.5, gt=1, description="x the norm, on average over the run")
    severity: Severity = "medium"
    min_ratio: float = Field(1.8, gt=1, description="x the norm in every hour of the run")
    min_hours: int = Field(3, ge=2, description="consecutive hours, at least")
    max_hours: int = Field(12, ge=2, le=24, description="hours looked back")
    min_count: int = Field(60, ge=1, description="requests over the run, at least")
    min_z: float = Field(5.0, ge=0, description="Poisson z-score of the run's excess")
    min_expected: float = Field(1.0, gt=0, description="requests an hour the norm is at least")
    daily_weight: float = Field(0.5, ge=0, le=1, description="weight of the any-day norm")


class SustainedDenied(_Model):
    """Denials spread thinly over hours (one every ten minutes where the norm is one a day):
    probing paced under denied_burst's floors."""

    enabled: bool = True
    threshold: float = Field(10.0, gt=1, description="x its denials per hour, every hour")
    severity: Severity = "medium"
    min_per_hour: int = Field(2, ge=1, description="denials in every hour of the run")
    min_hours: int = Field(3, ge=2, description="consecutive hours, at least")
    max_hours: int = Field(12, ge=2, le=24, description="hours looked back")


class NewSource(_Model):
    enabled: bool = True
    threshold: float = Field(0.6, gt=0, le=1)
    severity: Severity = "medium"


class Dormant(_Model):
    enabled: bool = True
    threshold: float = Field(1.0, gt=0, description="x the required silence")
    severity: Severity = "medium"
    min_days: float = Field(30, gt=0, description="silence that makes an identity dormant")
    gap_factor: float = Field(3.0, ge=1, description="x its longest silence before")


class RootToken(_Model):
    enabled: bool = True
    threshold: float = Field(1.0, gt=0)
    severity: Severity = "critical"


class ControlPlane(_Model):
    """Control-plane changes (policies, auth methods, RBAC, resource policies, deletions):
    a kind of change the identity never made before (`severity`, `grant_severity` for
    grants touching secrets and root or orphan tokens); tampering with audit itself is
    `tamper_severity` whatever the history."""

    enabled: bool = True
    threshold: float = Field(1.0, gt=0)
    severity: Severity = "medium"
    grant_severity: Severity = "high"
    tamper_severity: Severity = "critical"


class Multivariate(_Model):
    enabled: bool = True
    # The score is 0 for the median holdout hour and 1 for the most anomalous one; a margin
    # above 1 keeps the many ordinary hours of a long stream from crossing it by chance.
    threshold: float = Field(2.5, gt=0, description="x as far out as the furthest holdout hour")
    severity: Severity = "low"
    components: int = Field(8, ge=1, description="Gaussian mixture components")
    min_rows: int = Field(500, ge=50, description="holdout identity-hours needed to fit")


class SharedSource(_Model):
    """An outside network that several identities, none of which had used it, come from
    within hours: one incident naming all of them (detectors/fleet.py)."""

    enabled: bool = True
    severity: Severity = "high"
    min_identities: int = Field(2, ge=2, description="identities on one network, at least")
    window_hours: float = Field(4, gt=0, le=48, description="from the first of them")


class Fleet(_Model):
    """Many identities deviating in one batch (a rotation, a deploy, a restart): one
    fleet-wide finding instead of one per service (detectors/fleet.py)."""

    enabled: bool = True
    severity: Severity = "medium"
    # After a write or rotation of the very secrets re-read: below what pages anyone.
    explained_severity: Severity = "low"
    min_identities: int = Field(5, ge=2, description="identities deviating together")
    min_share: float = Field(0.3, gt=0, le=1, description="of the batch's active identities")
    rotation_hours: float = Field(6, ge=0, le=72, description="a write this close explains")
    detectors: list[str] = Field(
        default_factory=lambda: [
            "rate_spike",
            "sustained_rate",
            "unusual_time",
            "unexpected_accessor",
            "multivariate",
        ],
        description="the findings that count as deviating",
    )


class DetectorsConfig(_Model):
    timezone: str = "UTC"
    window_minutes: int = Field(10, ge=1, le=60, description="burst window")
    batch_minutes: int = Field(60, ge=1, le=1440, description="replay/detect batch length")
    group_gap_hours: float = Field(
        48, ge=0, description="findings on one identity this close form one incident"
    )
    rate_history_weeks: int = Field(8, ge=1, le=52)
    cold_start: ColdStart = ColdStart()
    unusual_time: UnusualTime = UnusualTime()
    rate_spike: RateSpike = RateSpike()
    unexpected_accessor: UnexpectedAccessor = UnexpectedAccessor()
    denied_burst: DeniedBurst = DeniedBurst()
    enumeration: Enumeration = Enumeration()
    cold_enumeration: ColdEnumeration = ColdEnumeration()
    sustained_rate: SustainedRate = SustainedRate()
    sustained_denied: SustainedDenied = SustainedDenied()
    new_source: NewSource = NewSource()
    dormant: Dormant = Dormant()
    root_token: RootToken = RootToken()
    control_plane: ControlPlane = ControlPlane()
    multivariate: Multivariate = Multivariate()
    shared_source: SharedSource = SharedSource()
    fleet: Fleet = Fleet()
    # Each identity's Vault policies (identity -> policy names): identities holding the
    # same ones are peers (detectors/peers.py). Filled from the inventory the access
    # review reads (`report.inventory`, its `identities`) unless given here.
    policies: dict[str, list[str]] = Field(default_factory=dict)

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
