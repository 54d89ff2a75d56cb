"""The sink interface, its errors, and the HTTP and secret helpers every sink shares.

A sink turns a batch of alert revisions into requests to one receiver. It either returns
(every alert taken, except those it names as failed) or raises `SinkError` for the whole
batch; the delivery worker decides about retries, dead letters and breakers, so a sink
holds no retry logic. Constructors do no I/O: secrets are read and clients opened in
`start()`.
"""

from __future__ import annotations

import email.utils
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from pipeline.errors import ConfigError, SecretwatchError
from pipeline.redact import redact_raw
from pipeline.sinks.payloads import NativeRecord
from pipeline.sinks.settings import HttpSinkSettings

MAX_BODY = 500  # characters of a receiver's answer kept in an error


class SinkError(SecretwatchError):
    """A receiver refused or did not take a batch. `status` is its HTTP status (None when
    it never answered); `retry_after` its Retry-After in seconds; `fix` what to do."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.retry_after, self.fix = status, retry_after, fix

    @property
    def retryable(self) -> bool:
        """Network failures, timeouts, 408, 425, 429 and 5xx pass; other 4xx will not.

        >>> SinkError("x", 503).retryable, SinkError("x", 401).retryable
        (True, False)
        """
        return self.status is None or self.status in (408, 425, 429) or self.status >= 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One alert revision on its way: the id is its idempotency key on every attempt."""

    alert_id: str
    revision: int
    alert: NativeRecord  # what every payload format renders


class Sink(Protocol):
    name: str
    batch_size: int

    def start(self) -> None:
        """Read secrets and open clients; raise ConfigError naming the key and the fix."""

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        """Deliver a batch; return the alerts (by id) the receiver refused one by one, or
        raise SinkError when the whole batch failed."""

    def close(self) -> None: ...


def read_secret(
    cfg: HttpSinkSettings, key: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """The value of `<key>_env` or `<key>_file` in a sink's config, stripped of the
    trailing newline files usually have; None if neither is set. Errors name the variable
    or file, never the value."""
    environ = os.environ if environ is None else environ
    sink = cfg.name
    env, file = getattr(cfg, f"{key}_env", None), getattr(cfg, f"{key}_file", None)
    if env:
        value = environ.get(env, "")
        if not value.strip():
            raise ConfigError(
                f"sink {sink!r}: environment variable {env} (from {key}_env) is not set or "
                f"empty; export it, or point {key}_file at a file holding the value"
            )
        return value.strip()
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"sink {sink!r}: {key}_file {file} cannot be read ({exc.strerror}); fix "
                "the path or its permissions"
            ) from None
        if not value.strip():
            raise ConfigError(f"sink {sink!r}: {key}_file {file} is empty")
        return value.strip()
    return None


def http_client(cfg: HttpSinkSettings, headers: Mapping[str, str] | None = None) -> httpx.Client:
    """An HTTP client with the sink's timeout and TLS settings."""
    verify: str | bool = str(cfg.ca_file) if cfg.ca_file else cfg.verify_tls
    return httpx.Client(
        timeout=httpx.Timeout(cfg.timeout),
        verify=verify,
        headers=dict(headers or {}),
        follow_redirects=False,
    )


class Scrubber:
    """Removes a sink's secrets (and secret-looking JSON values) from text bound for logs
    and the store: a receiver may echo a token back in an error page."""

    def __init__(self, *secrets: str | None) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def __call__(self, text: str, limit: int = MAX_BODY) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        clean = redact_raw(text.encode("utf-8", "replace"), limit).decode("utf-8", "replace")
        return clean.replace("\n", " ").replace("\r", " ")


def post(
    client: httpx.Client,
    url: str,
    what: str,
    scrub: Scrubber,
    fixes: Mapping[int, str],
    **kwargs: Any,
) -> httpx.Response:
    """POST and translate failures into SinkError (status, Retry-After, the receiver's
    answer scrubbed and clipped, and the fix for that status from `fixes`)."""
    try:
        response = client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise SinkError(f"{what}: no answer within the timeout ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise SinkError(f"{what}: {type(exc).__name__}: {scrub(str(exc))}") from exc
    if response.is_success:
        return response
    raise status_error(response, what, scrub, fixes)


def status_error(
    response: httpx.Response, what: str, scrub: Scrubber, fixes: Mapping[int, str]
) -> SinkError:
    """A SinkError for a receiver's non-2xx answer."""
    status = response.status_code
    body = scrub(response.text)
    fix = fixes.get(status) or (fixes.get(0) if 400 <= status < 500 else None)
    return SinkError(
        f"{what}: HTTP {status} {response.reason_phrase}: {body}".rstrip(": "),
        status,
        retry_after(response.headers.get("retry-after")),
        fix,
    )


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date).

    >>> retry_after("7"), retry_after(None), retry_after("soon")
    (7.0, None, None)
    >>> retry_after("Sun, 01 Mar 2026 00:00:10 GMT", datetime(2026, 3, 1, tzinfo=UTC))
    10.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str)
