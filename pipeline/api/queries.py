"""The query API: what the CLI's read and triage commands ask of the store, over HTTP, so
they keep working while `secretwatch serve` holds the store.

Frames go out as Arrow IPC streams (dtypes and values exact, see `frames`), small documents
as JSON. Every handler opens its own store with `open_reader()` in a worker thread and
closes it when done: on DuckDB that is a connection of its own to the database the writer
has open (MVCC: a query does not wait for the writer's transaction), on Elasticsearch a
client. Parameters are checked before a store is opened (400 with what is wrong); a store
failure is a 503 whose text names the store, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import closing
from datetime import UTC, datetime

import orjson
import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.api.documents import find_alert, records
from pipeline.api.frames import ARROW_STREAM, TRUNCATED, frame_to_arrow
from pipeline.collectors.http import BodyTooLarge, authorized, read_body
from pipeline.errors import StoreError
from pipeline.errortext import clean_error
from pipeline.record import ACTIONS, OUTCOMES, SOURCES
from pipeline.store.base import DELIVERY_STATES, GROUPABLE, RESOLUTIONS, EventFilter, Store

log = logging.getLogger(__name__)
MAX_ROWS = 1_000_000  # events, dead letters, alerts and deliveries per request
MAX_TEXT = 1_000  # a filter value, an alert id, a sink name
MAX_NOTE = 4_000  # a verdict's note
MAX_BODY = 64 << 10
REPORT_AGGREGATES = ("access_summary", "hourly_activity", "source_coverage", "secret_history")

Reader = Callable[[], Store]


class BadRequest(Exception):  # noqa: N818 - answered 400 with its message
    pass


class NotFound(Exception):  # noqa: N818 - answered 404 with its message
    pass


# -- parameters ---------------------------------------------------------------------------
def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not value or len(value) > MAX_TEXT:
        raise BadRequest(f"{name}: give 1 to {MAX_TEXT} characters")
    return value


def _choice(params: Mapping[str, str], name: str, valid: tuple[str, ...]) -> str | None:
    value = params.get(name)
    if value is not None and value not in valid:
        raise BadRequest(f"{name}: {value[:100]!r} is not one of {', '.join(valid)}")
    return value


def _when(params: Mapping[str, str], name: str) -> datetime | None:
    """ISO-8601; UTC when it names no zone."""
    value = params.get(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: {value[:100]!r} is not an ISO-8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _limit(params: Mapping[str, str], default: int | None = None) -> int:
    """The row limit, at most MAX_ROWS; absent means `default`, else MAX_ROWS."""
    value = params.get("limit")
    if value is None:
        return MAX_ROWS if default is None else default
    if not value.isdigit() or not 1 <= int(value) <= MAX_ROWS:
        raise BadRequest(f"limit: give a whole number from 1 to {MAX_ROWS:,}")
    return int(value)


def _flag(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name}: give true or false")
    return value in ("true", "1")


def event_filter(params: Mapping[str, str]) -> EventFilter:
    """The `secretwatch events` filters from query parameters."""
    return EventFilter(
        since=_when(params, "since"),
        until=_when(params, "until"),
        identity=_text(params, "identity"),
        secret=_text(params, "secret"),
        action=_choice(params, "action", ACTIONS),
        outcome=_choice(params, "outcome", OUTCOMES),
        source=_choice(params, "source", SOURCES),
    )


def _sinks(request: Request) -> list[str]:
    names = request.query_params.getlist("sink")
    if len(names) > 100 or any(not n or len(n) > MAX_TEXT for n in names):
        raise BadRequest(f"sink: at most 100 names of 1 to {MAX_TEXT} characters")
    return names


# -- answers ------------------------------------------------------------------------------
def _error(status: int, message: str) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status, headers=headers)


def _arrow(frame: pd.DataFrame, cap: int | None = None) -> Response:
    headers = {TRUNCATED: f"{cap:,}"} if cap is not None and len(frame) >= cap else None
    return Response(frame_to_arrow(frame), media_type=ARROW_STREAM, headers=headers)


def _json(value: object) -> Response:
    return Response(
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS), media_type="application/json"
    )


Endpoint = Callable[[Request], Awaitable[Response]]
Work = Callable[[Store], Response]  # what a request asks of the store, its parameters checked
Parse = Callable[[Request], Work]


def _endpoint(open_reader: Reader, token: str | None, parse: Parse) -> Endpoint:
    """An async endpoint: authorize, check the parameters (`parse`: 400 before any store is
    opened), then run the work in a worker thread on a store opened for it; 404 for what
    does not exist, 503 for store failures, and 500 with one cleaned line (logged, without
    a traceback) for anything else."""

    async def endpoint(request: Request) -> Response:
        if not authorized(request, token):
            return _error(401, "a valid bearer token is required (Authorization: Bearer ...)")
        try:
            work = parse(request)
            return await run_in_threadpool(_with_store, open_reader, work)
        except BadRequest as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        except StoreError as exc:
            return _error(503, clean_error(str(exc)) or "the store failed")
        except Exception as exc:  # a driver's own error: one clean line, never a traceback
            text = clean_error(f"{type(exc).__name__}: {exc}") or type(exc).__name__
            log.error("event=query_failed path=%s error=%s", request.url.path, text)
            return _error(500, f"the query failed: {text}")

    return endpoint


def _with_store(open_reader: Reader, work: Work) -> Response:
    with closing(open_reader()) as store:
        return work(store)


# -- the endpoints: parameters checked here, the store read in a worker thread ------------
def _events(request: Request) -> Work:
    params = request.query_params
    where, limit, newest = event_filter(params), _limit(params), _flag(params, "newest")
    return lambda store: _arrow(store.events(where, limit=limit, newest_first=newest), limit)


def _count(request: Request) -> Work:
    where = event_filter(request.query_params)
    return lambda store: _json({"count": store.count(where)})


def _stats(request: Request) -> Work:
    params = request.query_params
    by = _choice(params, "by", GROUPABLE)
    if by is None:
        raise BadRequest(f"by: required, one of {', '.join(GROUPABLE)}")
    where, limit = event_filter(params), _limit(params)
    return lambda store: _arrow(store.stats(by, where, limit))


def _dead_letters(request: Request) -> Work:
    limit = _limit(request.query_params)
    return lambda store: _arrow(store.dead_letters(limit), limit)


def _alerts(request: Request) -> Work:
    params = request.query_params
    since, until = _when(params, "since"), _when(params, "until")
    identity, limit, alert_id = _text(params, "identity"), _limit(params), _text(params, "alert_id")
    return lambda store: _arrow(store.alerts(since, until, identity, limit, alert_id), limit)


def _deliveries(request: Request) -> Work:
    params = request.query_params
    sinks, state = _sinks(request), _choice(params, "state", DELIVERY_STATES)
    alert_id, limit = _text(params, "alert_id"), _limit(params)
    return lambda store: _arrow(store.delivery_state(sinks, state, alert_id, limit))


def _alert(request: Request) -> Work:
    alert_id, sinks = _path_id(request), _sinks(request)

    def work(store: Store) -> Response:
        alert = find_alert(store, alert_id, sinks)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}; `secretwatch alerts` lists them")
        return _json(alert)

    return work


def _path_id(request: Request) -> str:
    alert_id = str(request.path_params["alert_id"])
    if len(alert_id) > MAX_TEXT:
        raise BadRequest(f"alert id: at most {MAX_TEXT} characters")
    return alert_id


def verdict(body: bytes) -> tuple[str | None, str, str | None]:
    """(resolution, by, note) from a resolve request's JSON body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(doc, dict) or not {"resolution", "by"} <= doc.keys():
        raise BadRequest('the body must be {"resolution": ..., "by": ..., "note": ...}')
    resolution, by, note = doc["resolution"], doc["by"], doc.get("note")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise BadRequest(f"resolution: one of {', '.join(RESOLUTIONS)}, or null to reopen")
    if not isinstance(by, str) or not 1 <= len(by) <= 200:
        raise BadRequest("by: who decided, 1 to 200 characters")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise BadRequest(f"note: text of at most {MAX_NOTE} characters")
    return resolution, by, note


def _resolve(request: Request, body: bytes) -> Work:
    alert_id = _path_id(request)
    resolution, by, note = verdict(body)

    def work(store: Store) -> Response:
        if find_alert(store, alert_id, []) is None:
            raise NotFound(f"no alert {alert_id!r}; `secretwatch alerts` lists them")
        store.resolve_alert(alert_id, resolution, by, note, datetime.now(UTC))
        return _json({"id": alert_id, "resolution": resolution, "by": by})

    return work


def _identities(request: Request) -> Work:
    """Every identity with events, its counts, and whether it has a baseline."""
    where = event_filter(request.query_params)

    def work(store: Store) -> Response:
        frame = store.stats("identity", where, None)
        learned = {identity for identity, _ in store.baselines()}
        rows = records(frame)
        for row in rows:
            row["baseline"] = row["identity"] in learned
        return _json(rows)

    return work


def _baselines(request: Request) -> Work:
    """Baseline documents (JSON) by identity: those named by `identity=`, else all."""
    names = request.query_params.getlist("identity") or None
    if names is not None and (len(names) > 1000 or any(len(n) > MAX_TEXT for n in names)):
        raise BadRequest(f"identity: at most 1,000 names of at most {MAX_TEXT} characters")
    return lambda store: _json(
        {identity: orjson.Fragment(body) for identity, body in store.baselines(names)}
    )


def _report(request: Request) -> Work:
    params, name = request.query_params, str(request.path_params["aggregate"])
    if name not in REPORT_AGGREGATES:
        raise NotFound(f"no report aggregate {name!r}; one of {', '.join(REPORT_AGGREGATES)}")
    since, until = _when(params, "since"), _when(params, "until")
    if until is None:
        raise BadRequest("until: required")
    if name == "secret_history":
        return lambda store: _arrow(store.secret_history(until))
    return lambda store: _arrow(getattr(store, name)(since, until))


def _schema(request: Request) -> Work:
    return lambda store: _json({"schema_version": store.schema_version()})


def query_routes(open_reader: Reader, token: str | None) -> list[BaseRoute]:
    """The /api/ query and triage routes. `open_reader()` returns an opened store the
    handler closes when done (on DuckDB, a second `DuckDBStore` on the writer's file, opened
    in the serving process); `token`, when set, is required as a bearer token."""

    def get(path: str, parse: Parse) -> Route:
        return Route(path, _endpoint(open_reader, token, parse), methods=["GET"])

    async def resolve(request: Request) -> Response:
        if not authorized(request, token):
            return _error(401, "a valid bearer token is required (Authorization: Bearer ...)")
        try:
            body = await read_body(request, MAX_BODY)
        except BodyTooLarge as exc:
            return _error(413, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        endpoint = _endpoint(open_reader, None, lambda r: _resolve(r, body))
        return await endpoint(request)

    return [
        get("/api/events", _events),
        get("/api/events/count", _count),
        get("/api/stats", _stats),
        get("/api/dead-letters", _dead_letters),
        get("/api/alerts", _alerts),
        get("/api/alerts/{alert_id}", _alert),
        Route("/api/alerts/{alert_id}/resolve", resolve, methods=["POST"]),
        get("/api/deliveries", _deliveries),
        get("/api/identities", _identities),
        get("/api/baselines", _baselines),
        get("/api/report/{aggregate}", _report),
        get("/api/schema-version", _schema),
    ]
