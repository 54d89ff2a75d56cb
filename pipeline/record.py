"""The one normalized record, `AccessEvent`, and its fast positional twin `EventRow`.

`AccessEvent` (pydantic) is the contract at the edges: tests, the CLI's JSON output, later the
API. The hot path builds `EventRow` tuples (same fields, same order, timestamps as integer
microseconds since the epoch) and hands them to the store as Arrow columns; `to_event` and
`AccessEvent.model_validate` turn one into the other, so both stay in step.

Secret values never enter either: parsers read names and paths, never payloads.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, field_validator

from pipeline.errors import ParseError

Source = Literal["vault", "aws", "gcp", "azure", "k8s"]
IdentityKind = Literal["service", "human", "root", "unknown"]
Action = Literal["read", "list", "write", "delete", "rotate", "auth", "control", "other"]
Outcome = Literal["success", "denied", "error"]

# The values of each type, for checks and help text. Which sources exist is the source
# registry's to say (`pipeline.sources.SOURCES`); `Source` spells the same names out for the
# type checker, and tests/sources/test_source_registry.py fails if the two drift apart.
SOURCES: tuple[str, ...] = get_args(Source)
IDENTITY_KINDS: tuple[str, ...] = get_args(IdentityKind)
ACTIONS: tuple[str, ...] = get_args(Action)
OUTCOMES: tuple[str, ...] = get_args(Outcome)


class AccessEvent(BaseModel):
    """One access to (or attempt on) a secrets backend, normalized across sources.

    >>> e = AccessEvent(event_id="r1", timestamp="2026-05-01T03:10:00Z", source="vault",
    ...     backend="vault", identity="orders-api", identity_kind="service",
    ...     secret="secret/db", action="read", operation="read", outcome="success")
    >>> e.timestamp.isoformat()
    '2026-05-01T03:10:00+00:00'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    timestamp: datetime
    source: Source
    backend: str
    identity: str
    identity_kind: IdentityKind
    secret: str | None
    action: Action
    operation: str
    outcome: Outcome
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    error: str | None = None
    note: str | None = None
    # The person behind a shared identity, where the log names one (an SSO or assumed-role
    # session named for a person); the identity stays the role, which baselines follow.
    actor: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a time zone (naive datetimes are ambiguous)")
        return value.astimezone(UTC)


class EventRow(NamedTuple):
    """`AccessEvent` as a tuple: cheap to build per event, transposed to columns per batch."""

    event_id: str
    ts_us: int
    source: str
    backend: str
    identity: str
    identity_kind: str
    secret: str | None
    action: str
    operation: str
    outcome: str
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    error: str | None
    note: str | None
    actor: str | None = None  # last, with a default: parsers that name no person omit it


FIELDS: tuple[str, ...] = EventRow._fields

# The note of an event built from an incomplete record (a Vault request whose response has
# not been seen), alone or followed by "; " and what else the parser noted (a lone request
# to disable an audit device keeps its tampering mark: `provisional`). Stores let a later
# complete record with the same id replace it.
PROVISIONAL_NOTE = "provisional: no response entry yet; outcome from the request"
# Notes that mark control-plane events (`pipeline.sources.control_plane`): a change to who
# can read secrets, or to whether anyone can see it (tampering with audit itself). The
# `control_plane` detector finds its events by them (detectors/control_plane.py spells
# the same text; a test holds them equal).
CONTROL_NOTE = "control-plane: "
TAMPER_NOTE = "audit tampering: "
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_event(row: EventRow) -> AccessEvent:
    """Validate a hot-path row against the contract."""
    data = row._asdict()
    data["timestamp"] = from_micros(data.pop("ts_us"))
    return AccessEvent.model_validate(data)


def from_micros(ts_us: int) -> datetime:
    return datetime.fromtimestamp(ts_us // 1_000_000, UTC).replace(microsecond=ts_us % 1_000_000)


def to_micros(text: object) -> int:
    """Parse an ISO-8601 timestamp into UTC microseconds; naive times are taken as UTC.

    Accepts what the sources write: `Z` suffixes, 0-9 fractional digits (truncated to
    microseconds), and Panther's `2024-10-17 21:48:45.000000000`.

    >>> to_micros("2020-12-01T20:29:04.356625452Z")
    1606854544356625
    """
    if not isinstance(text, str):
        raise ParseError(f"timestamp must be a string, got {type(text).__name__}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(f"timestamp {text[:40]!r} is not ISO-8601") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if 1900 < value.year < 2400:  # float seconds are exact to the second in this range
        return int(value.timestamp() // 1) * 1_000_000 + value.microsecond
    return (value - _EPOCH) // _MICRO


def synthetic_id(source: str, *parts: object) -> str:
    """A stable event id for records that carry none, from the fields that identify them."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{source}:sha256:{digest}"


def clip(value: object, limit: int = 256) -> str | None:
    """A short string for free-text fields (errors, user agents); never a whole payload."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provisional(note: str | None) -> bool:
    """Whether an event's note marks it provisional (`PROVISIONAL_NOTE`, then maybe more).

    >>> provisional(PROVISIONAL_NOTE), provisional(PROVISIONAL_NOTE + "; audit tampering: x")
    (True, True)
    >>> provisional(None), provisional("control-plane: wrote the ACL policy a")
    (False, False)
    """
    return note is not None and note.startswith(PROVISIONAL_NOTE)
