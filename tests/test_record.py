"""The record contract: timestamps, synthetic ids, `AccessEvent` validation, `EventRow`."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pipeline.errors import ParseError
from pipeline.record import (
    ACTIONS,
    FIELDS,
    IDENTITY_KINDS,
    OUTCOMES,
    SOURCES,
    AccessEvent,
    EventRow,
    clip,
    from_micros,
    synthetic_id,
    to_event,
    to_micros,
)

# 2020-12-01T20:29:04.356625Z in microseconds since the epoch.
BASE_US = 1_606_854_544_356_625


def _exact_micros(value: datetime) -> int:
    """Integer-only reference: microseconds since the epoch."""
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _event(**overrides: object) -> dict:
    data: dict[str, object] = {
        "event_id": "r1",
        "timestamp": "2026-05-01T03:10:00Z",
        "source": "vault",
        "backend": "vault",
        "identity": "orders-api",
        "identity_kind": "service",
        "secret": "secret/db",
        "action": "read",
        "operation": "read",
        "outcome": "success",
    }
    data.update(overrides)
    return data


def _row(**overrides: object) -> EventRow:
    values: dict[str, object] = {
        "event_id": "e1",
        "ts_us": BASE_US,
        "source": "vault",
        "backend": "vault",
        "identity": "orders-api",
        "identity_kind": "service",
        "secret": "secret/db",
        "action": "read",
        "operation": "read",
        "outcome": "success",
        "source_ip": "10.0.0.1",
        "user_agent": None,
        "request_id": "e1",
        "error": None,
        "note": None,
    }
    values.update(overrides)
    return EventRow(**values)  # type: ignore[arg-type]


# -- to_micros -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-12-01T20:29:04.356625Z", BASE_US),  # Z suffix, microseconds
        ("2020-12-01T20:29:04.3566254Z", BASE_US),  # 7 fractional digits (Azure), truncated
        ("2020-12-01T20:29:04.356625452Z", BASE_US),  # 9 fractional digits (Vault), truncated
        ("2020-12-01T20:29:04.356625999Z", BASE_US),  # truncated, never rounded up
        ("2020-12-01T22:29:04.356625+02:00", BASE_US),  # offset converted to UTC
        ("2020-12-01T15:29:04.356625-05:00", BASE_US),
        ("2020-12-01T20:29:04.356625", BASE_US),  # naive ISO: taken as UTC
        ("2020-12-01 20:29:04.356625000", BASE_US),  # Panther's normalised form, naive
        ("2020-12-01T20:29:04Z", BASE_US - 356_625),  # no fraction
        ("2020-12-01T20:29:04.5Z", BASE_US - 356_625 + 500_000),  # one digit
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.500000Z", -500_000),  # before the epoch: floor, not trunc
    ],
)
def test_to_micros_forms(text: str, expected: int) -> None:
    assert to_micros(text) == expected


def test_to_micros_panther_form_of_sample() -> None:
    # The exact string the Panther YAML sample uses.
    assert to_micros("2024-10-17 21:48:45.000000000") == 1_729_201_725_000_000


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2020-13-01T00:00:00Z", "2020-12-01T25:00:00Z", "12/01/2020 20:29", "Z"],
)
def test_to_micros_rejects_bad_timestamps(text: str) -> None:
    with pytest.raises(ParseError, match="not ISO-8601"):
        to_micros(text)


@pytest.mark.parametrize("value", [None, 1606854544, 1.5, ["2020-12-01T20:29:04Z"], {}])
def test_to_micros_rejects_non_strings(value: object) -> None:
    with pytest.raises(ParseError, match="must be a string"):
        to_micros(value)


def test_to_micros_long_garbage_is_clipped_in_message() -> None:
    with pytest.raises(ParseError) as info:
        to_micros("x" * 500)
    assert len(str(info.value)) < 100


@pytest.mark.parametrize(
    "when",
    [
        datetime(2020, 12, 1, 20, 29, 4, 356625, tzinfo=UTC),
        datetime(2026, 5, 1, 3, 10, 0, 999999, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_to_micros_and_from_micros_round_trip(when: datetime) -> None:
    ts = to_micros(when.isoformat())
    assert ts == _exact_micros(when)
    assert from_micros(ts) == when


def test_to_micros_is_exact_far_from_the_epoch() -> None:
    """BUG (pipeline/record.py, to_micros): whole seconds come from the float
    `value.timestamp() // 1`, which rounds .999999 up to the next second once the float's
    resolution is coarser than a microsecond (after about year 2514): this returns
    19880899201999999 (one second late). Integer arithmetic, e.g.
    `(value - _EPOCH) // timedelta(microseconds=1)`, is exact for every datetime."""
    when = datetime(2600, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    assert to_micros("2600-01-01T00:00:00.999999Z") == _exact_micros(when) == 19880899200999999


def test_from_micros_is_utc_and_exact() -> None:
    value = from_micros(BASE_US)
    assert value.tzinfo is UTC
    assert value == datetime(2020, 12, 1, 20, 29, 4, 356625, tzinfo=UTC)
    assert from_micros(-500_000) == datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)


# -- synthetic_id --------------------------------------------------------------------------


def test_synthetic_id_is_stable_and_shaped() -> None:
    first = synthetic_id("vault", "auth/jwt/login", "update", "3.93.200.217", 58070)
    second = synthetic_id("vault", "auth/jwt/login", "update", "3.93.200.217", 58070)
    assert first == second
    prefix, algo, digest = first.split(":")
    assert (prefix, algo) == ("vault", "sha256")
    assert len(digest) == 32
    int(digest, 16)  # hexadecimal
    # The digest is a pure function of the parts (no process-random hashing).
    expected = hashlib.sha256(b"auth/jwt/login\x1fupdate\x1f3.93.200.217\x1f58070")
    assert first == "vault:sha256:" + expected.hexdigest()[:32]


def test_synthetic_id_distinguishes_parts() -> None:
    ids = {
        synthetic_id("vault", "a", "b"),
        synthetic_id("vault", "b", "a"),  # order matters
        synthetic_id("vault", "ab"),  # a separator keeps part boundaries
        synthetic_id("vault", "a", "b", None),
        synthetic_id("aws", "a", "b"),  # the source is part of the id
    }
    assert len(ids) == 5


# -- AccessEvent ---------------------------------------------------------------------------


def test_access_event_rejects_naive_datetime() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        AccessEvent(**_event(timestamp=datetime(2026, 5, 1, 3, 10)))  # noqa: DTZ001


def test_access_event_rejects_naive_string() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        AccessEvent(**_event(timestamp="2026-05-01T03:10:00"))


def test_access_event_converts_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = AccessEvent(**_event(timestamp=datetime(2026, 5, 1, 5, 10, tzinfo=plus_two)))
    assert event.timestamp == datetime(2026, 5, 1, 3, 10, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", "ldap"),
        ("identity_kind", "robot"),
        ("action", "steal"),
        ("outcome", "maybe"),
        ("identity", None),
        ("event_id", 5),
    ],
)
def test_access_event_rejects_values_outside_the_contract(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        AccessEvent(**_event(**{field: value}))
    assert field in str(info.value)


def test_access_event_forbids_unknown_fields_and_is_frozen() -> None:
    with pytest.raises(ValidationError, match="payload"):
        AccessEvent(**_event(payload={"pw": "x"}))
    event = AccessEvent(**_event())
    with pytest.raises(ValidationError):
        event.identity = "someone-else"  # type: ignore[misc]


def test_literals_match_exported_tuples() -> None:
    assert SOURCES == ("vault", "aws", "gcp", "azure", "k8s")
    for value in SOURCES:
        AccessEvent(**_event(source=value))
    for value in IDENTITY_KINDS:
        AccessEvent(**_event(identity_kind=value))
    for value in ACTIONS:
        AccessEvent(**_event(action=value))
    for value in OUTCOMES:
        AccessEvent(**_event(outcome=value))


# -- EventRow <-> AccessEvent --------------------------------------------------------------


def test_event_row_fields_mirror_access_event() -> None:
    model_fields = list(AccessEvent.model_fields)
    assert [("timestamp" if f == "ts_us" else f) for f in FIELDS] == model_fields


def test_to_event_round_trip() -> None:
    event = to_event(_row(secret=None, error="boom", note="n"))
    assert event.timestamp == datetime(2020, 12, 1, 20, 29, 4, 356625, tzinfo=UTC)
    assert event.secret is None
    assert event.error == "boom"
    assert event.note == "n"
    assert event.source_ip == "10.0.0.1"


def test_to_event_rejects_bad_rows() -> None:
    with pytest.raises(ValidationError):
        to_event(_row(action="peek"))


# -- clip ----------------------------------------------------------------------------------


def test_clip() -> None:
    assert clip(None) is None
    assert clip("short") == "short"
    assert clip(42) == "42"
    long = clip("x" * 1000)
    assert long is not None
    assert len(long) == 256
    assert long.endswith("…")
    assert clip("y" * 256) == "y" * 256
    assert clip("z" * 20, limit=10) == "z" * 9 + "…"
