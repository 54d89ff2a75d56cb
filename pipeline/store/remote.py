"""`RemoteStore`: the store as the running service's query API serves it (pipeline/api/
queries.py), for the CLI's read and triage commands while a service holds the store.

It plays the read side of every role (events, dead letters, stats, alerts and their
delivery state, baselines, the report aggregates) and the analyst's verdict; frames come
back exactly as the store made them. What only the service may do (ingest, detection,
delivery) raises a StoreError saying so. Every failure is a StoreError that names the
service and the fix: not answering, a refused token, a bad request, a failing store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import httpx
import orjson

from pipeline.api.frames import ARROW_STREAM, TRUNCATED, arrow_to_frame
from pipeline.api.rows import arrow_to_rows
from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.store.base import (
    ALL_EVENTS,
    Checkpoint,
    DeliveryOutcome,
    EventFilter,
    PendingDelivery,
)

if TYPE_CHECKING:  # only in signatures: `events --server` reads rows, with no pandas
    import pandas as pd  # and no parsers (pipeline.sources)

    from pipeline.sources.base import DeadLetter

T = TypeVar("T")
TOKEN_ENV = "SECRETWATCH_API_TOKEN"  # noqa: S105 - the name of a variable, not a token
Params = list[tuple[str, str]]
Query = Sequence[tuple[str, str]]


def _filter_params(where: EventFilter) -> Params:
    params: Params = []
    for name in ("since", "until"):
        value = getattr(where, name)
        if value is not None:
            params.append((name, value.isoformat()))
    for name in ("identity", "secret", "action", "outcome", "source"):
        value = getattr(where, name)
        if value is not None:
            params.append((name, value))
    return params


def _limit(limit: int | None) -> Params:
    return [] if limit is None else [("limit", str(limit))]


def _events_params(where: EventFilter, limit: int | None, newest_first: bool) -> Params:
    params = _filter_params(where) + _limit(limit)
    return params + [("newest", "true")] if newest_first else params


class RemoteStore:
    """The store behind a running service's API at `url` (bearer `token` if it needs one)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._schema: int | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        """Connect and ask the schema version: a service that is down or refuses the token
        fails here, before any command starts its work."""
        headers = {"authorization": f"Bearer {self._token}"} if self._token else {}
        # An http:// service is never spoken TLS to (no redirects followed; a proxy's TLS has
        # its own context), so its client loads no CA bundle: 50 ms of a CLI command.
        tls = self.url.startswith("https://")
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=self._timeout, verify=tls
        )
        try:
            self._schema = int(self._json("GET", "/api/schema-version")["schema_version"])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RemoteStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        if self._schema is None:
            raise StoreError("remote store is not open; call open() first")
        return self._schema

    # -- HTTP ----------------------------------------------------------------------------
    def _send(
        self, method: str, path: str, params: Query = (), body: object = None
    ) -> httpx.Response:
        if self._client is None:
            raise StoreError("remote store is not open; call open() first")
        where = f"the secretwatch service at {self.url}"
        try:
            content = None if body is None else orjson.dumps(body)
            response = self._client.request(method, path, params=list(params), content=content)
        except httpx.TimeoutException:
            raise StoreError(f"{where} did not answer in {self._timeout:g} s") from None
        except httpx.TransportError as exc:
            raise StoreError(
                f"{where} is not answering ({type(exc).__name__}: {exc}); is `secretwatch "
                "serve` running with `api:` in its config?"
            ) from None
        if response.status_code == 401:
            raise StoreError(
                f"{where} refused the API token (HTTP 401): set ${TOKEN_ENV}, or `api:` "
                "token_env / token_file in the config, to the service's token"
            )
        if response.status_code >= 400:
            raise StoreError(f"{where} answered HTTP {response.status_code}: {_reason(response)}")
        return response

    def _json(self, method: str, path: str, params: Query = (), body: object = None) -> Any:  # noqa: ANN401 - a JSON document
        response = self._send(method, path, params, body)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise StoreError(f"{self.url}{path} did not answer JSON; is it secretwatch?") from None

    def _frame(self, path: str, params: Query = (), all_rows: bool = False) -> pd.DataFrame:
        return self._arrow(arrow_to_frame, path, params, all_rows)

    def _arrow(self, decode: Callable[[bytes], T], path: str, params: Query, all_rows: bool) -> T:
        """The Arrow stream the service answered, decoded; with `all_rows`, refused when
        the service stopped at its row cap."""
        response = self._send("GET", path, params)
        kind = response.headers.get("content-type", "")
        if not kind.startswith(ARROW_STREAM):
            raise StoreError(f"{self.url}{path} did not answer an Arrow stream; is it secretwatch?")
        cap = response.headers.get(TRUNCATED)
        if all_rows and cap is not None:
            raise StoreError(
                f"the secretwatch service at {self.url} answers at most {cap} rows at a time: "
                "narrow the request (--since/--until, filters) or give --limit"
            )
        try:
            return decode(response.content)
        except ValueError as exc:
            raise StoreError(f"{self.url}{path}: {exc}") from None

    # -- the event log (reads) -----------------------------------------------------------
    def events(
        self,
        where: EventFilter = ALL_EVENTS,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> pd.DataFrame:
        params = _events_params(where, limit, newest_first)
        return self._frame("/api/events", params, all_rows=limit is None)

    def event_rows(
        self,
        where: EventFilter = ALL_EVENTS,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """`events` as plain rows (missing values None), read without pandas: what
        `secretwatch events --server` prints, in a process that starts in a fraction of a
        second."""
        params = _events_params(where, limit, newest_first)
        return self._arrow(arrow_to_rows, "/api/events", params, all_rows=limit is None)

    def count(self, where: EventFilter = ALL_EVENTS) -> int:
        return int(self._json("GET", "/api/events/count", _filter_params(where))["count"])

    def stats(
        self, by: str, where: EventFilter = ALL_EVENTS, limit: int | None = None
    ) -> pd.DataFrame:
        params = [("by", by), *_filter_params(where), *_limit(limit)]
        return self._frame("/api/stats", params, all_rows=limit is None)

    def dead_letters(self, limit: int | None = None) -> pd.DataFrame:
        return self._frame("/api/dead-letters", _limit(limit), all_rows=limit is None)

    def checkpoint(self, key: str) -> Checkpoint | None:
        _service_only("follow checkpoints")

    def write_batch(
        self,
        rows: list[EventRow],
        dead: Sequence[DeadLetter] = (),
        checkpoints: Sequence[Checkpoint] = (),
    ) -> int:
        _service_only("ingest")

    # -- detection state -----------------------------------------------------------------
    def baselines(self, identities: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
        params = [("identity", name) for name in identities or ()]
        if identities is not None and not identities:
            return []
        docs = self._json("GET", "/api/baselines", params)
        return [(identity, orjson.dumps(doc)) for identity, doc in docs.items()]

    def identities(self, where: EventFilter = ALL_EVENTS) -> list[dict[str, Any]]:
        """Every identity with events: counts, first and last seen, whether it has a
        baseline (the API's `/api/identities`)."""
        rows: list[dict[str, Any]] = self._json("GET", "/api/identities", _filter_params(where))
        return rows

    def detection_state(self, key: str) -> bytes | None:
        _service_only("detection")

    def save_detection(
        self,
        baselines: Sequence[tuple[str, bytes]],
        state: Mapping[str, bytes],
        alerts: Sequence[Mapping[str, Any]],
        version: int,
        replace: bool = False,
    ) -> None:
        _service_only("detection")

    # -- the alert outbox ----------------------------------------------------------------
    def alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        identity: str | None = None,
        limit: int | None = None,
        alert_id: str | None = None,
    ) -> pd.DataFrame:
        params = _filter_params(EventFilter(since=since, until=until, identity=identity))
        params += [("alert_id", alert_id)] if alert_id is not None else []
        return self._frame("/api/alerts", params + _limit(limit), all_rows=limit is None)

    def alert(self, alert_id: str, sinks: Sequence[str] = ()) -> dict[str, Any]:
        """One alert (`body` parsed) with its delivery to each of `sinks`."""
        doc: dict[str, Any] = self._json(
            "GET", f"/api/alerts/{_segment(alert_id)}", [("sink", s) for s in sinks]
        )
        return doc

    def delivery_state(
        self,
        sinks: Sequence[str],
        state: str | None = None,
        alert_id: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        params: Params = [("sink", name) for name in sinks]
        params += [(k, v) for k, v in (("state", state), ("alert_id", alert_id)) if v is not None]
        return self._frame("/api/deliveries", params + _limit(limit))

    def resolve_alert(
        self, alert_id: str, resolution: str | None, by: str, note: str | None, now: datetime
    ) -> None:
        """The verdict goes to the service, which records it at its own clock (`now` is
        not sent)."""
        body = {"resolution": resolution, "by": by, "note": note}
        self._json("POST", f"/api/alerts/{_segment(alert_id)}/resolve", body=body)

    def pending_deliveries(self, sink: str, limit: int, now: datetime) -> list[PendingDelivery]:
        _service_only("delivery")

    def record_delivery(
        self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        _service_only("delivery")

    def redrive(self, sink: str | None = None, alert_id: str | None = None) -> int:
        _service_only("re-driving deliveries")

    def decide_fold(self, alert_id: str, into: str | None, now: datetime) -> str | None:
        _service_only("delivery")

    # -- report aggregates ---------------------------------------------------------------
    def _aggregate(self, name: str, since: datetime | None, until: datetime) -> pd.DataFrame:
        params = [("until", until.isoformat())]
        if since is not None:
            params.append(("since", since.isoformat()))
        return self._frame(f"/api/report/{name}", params)

    def access_summary(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return self._aggregate("access_summary", since, until)

    def hourly_activity(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return self._aggregate("hourly_activity", since, until)

    def source_coverage(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return self._aggregate("source_coverage", since, until)

    def secret_history(self, until: datetime) -> pd.DataFrame:
        return self._aggregate("secret_history", None, until)


def _service_only(what: str) -> NoReturn:
    raise StoreError(
        f"{what} is the running service's work: the store is held by `secretwatch serve`, "
        "and its API serves reads and verdicts only"
    )


def _segment(alert_id: str) -> str:
    """An alert id as one URL path segment."""
    from urllib.parse import quote

    return quote(alert_id, safe="")


def _reason(response: httpx.Response) -> str:
    """The service's `error` text, or the start of whatever it answered."""
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])[:2000]
    return response.text[:200] or response.reason_phrase
