"""The one POST endpoint the HTTP collectors share (Kubernetes webhook, NDJSON, Pub/Sub
push): authenticate, read the bounded body, cut it into spool lines, spool, answer.

A sender hears 2xx only after `Intake.accept` returned, so what it was told is stored is
on disk (fsynced). Framing and the fsync run in a worker thread, so a large body or a slow
disk never stalls the event loop that answers the other senders. Input the collector
cannot frame becomes a dead letter naming the collector and the request; a body with no
usable record at all is answered 400, one with some is answered 200 (the good records are
spooled, the bad ones are dead letters: a sender retrying the whole body would only
repeat them). Otherwise: 401 without valid credentials (nothing read or stored, counted),
413 over `max_body_bytes` after gunzipping, 408 when the body takes over `body_seconds`
(both dead letters), 503 when the spool cannot be written (nothing acknowledged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.collectors.base import Intake
from pipeline.collectors.http import BodyTooLarge, HttpServer, authorized, read_body
from pipeline.collectors.settings import GcpPubsubPush, HttpNdjson, K8sWebhook, parse_listen
from pipeline.errortext import clean_error

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bad:
    """One part of a body that cannot be spooled: where in the body, why, its bytes."""

    at: str  # "" for the whole body, else e.g. "line 3"
    reason: str
    raw: bytes


@dataclass(slots=True)
class Framed:
    """A body cut into spool lines (compact JSON, no newline inside) and refused parts."""

    lines: list[bytes] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)


Frame = Callable[[bytes], Framed]
# Checks a request's credentials when a bearer token is not enough (a signed JWT): the
# reason it is refused, or None when it may pass.
Check = Callable[[Request], str | None]


@dataclass(frozen=True)
class Endpoint:
    """What one HTTP collector serves: for whom, how big, and how bodies are cut."""

    intake: Intake
    frame: Frame
    max_body_bytes: int
    token: str | None = None  # bearer token required when set
    check: Check | None = None  # used instead of `token` when set
    body_seconds: float = 30.0  # then 408: a slow sender holds its connection no longer


def endpoint_of(
    settings: K8sWebhook | HttpNdjson | GcpPubsubPush,
    intake: Intake,
    frame: Frame,
    check: Check | None = None,
) -> Endpoint:
    """The endpoint `settings` describe; the bearer token is read now, unless `check`
    replaces it."""
    return Endpoint(
        intake=intake,
        frame=frame,
        max_body_bytes=settings.max_body_bytes,
        token=settings.token() if check is None else None,
        check=check,
        body_seconds=settings.body_seconds,
    )


def app(endpoint: Endpoint, path: str) -> Starlette:
    """A Starlette app serving POST on `path` only (404 elsewhere, 405 for other methods,
    as Starlette's router answers)."""

    async def receive(request: Request) -> Response:
        return await _receive(endpoint, request)

    return Starlette(routes=[Route(path, receive, methods=["POST"])])


def _refused_credentials(endpoint: Endpoint, request: Request) -> str | None:
    if endpoint.check is not None:
        return endpoint.check(request)
    if not authorized(request, endpoint.token):
        return "a valid bearer token is required"
    return None


async def _receive(endpoint: Endpoint, request: Request) -> Response:
    intake = endpoint.intake
    refused = _refused_credentials(endpoint, request)
    if refused is not None:
        intake.unauthorized()
        return _error(401, refused, {"WWW-Authenticate": "Bearer"})
    where = _where(request)
    try:
        with anyio.fail_after(endpoint.body_seconds):
            body = await read_body(request, endpoint.max_body_bytes)
    except TimeoutError:
        reason = f"the body did not arrive within {endpoint.body_seconds:g} s (body_seconds)"
        await _reject(intake, where, f"request refused (408): {reason}")
        return _error(408, reason)
    except BodyTooLarge as exc:
        await _reject(intake, where, f"request refused (413): {exc}")
        return _error(413, f"{exc}; the limit is max_body_bytes")
    except ValueError as exc:
        reason = clean_error(str(exc)) or "unreadable body"
        await _reject(intake, where, reason)
        return _error(400, reason)
    try:
        framed = await anyio.to_thread.run_sync(_spool, endpoint, where, body)
    except OSError as exc:  # the spool could not be written: nothing acknowledged
        log.error("collector %s: cannot spool: %s", intake.collector, exc.strerror or exc)
        return _error(503, "the collector cannot store input now; retry later")
    if framed.bad and not framed.lines:
        return _error(400, _summary(framed.bad))
    return JSONResponse({"accepted": len(framed.lines), "rejected": len(framed.bad)})


async def _reject(intake: Intake, where: str, reason: str) -> None:
    """A refused request's dead letter, written (and fsynced) off the event loop."""
    await anyio.to_thread.run_sync(intake.reject, where, reason, b"")


def _spool(endpoint: Endpoint, where: str, body: bytes) -> Framed:
    """Cut, spool (durable on return), then dead-letter the refused parts."""
    framed = endpoint.frame(body)
    endpoint.intake.accept(framed.lines)
    for bad in framed.bad:
        at = f"{where}, {bad.at}" if bad.at else where
        endpoint.intake.reject(at, bad.reason, bad.raw)
    return framed


def _where(request: Request) -> str:
    client = request.client
    sender = f"{client.host}:{client.port}" if client else "an unknown sender"
    return f"POST {request.url.path} from {sender}"


def _summary(bad: Sequence[Bad]) -> str:
    first = bad[0]
    head = f"{first.at}: {first.reason}" if first.at else first.reason
    return head if len(bad) == 1 else f"{head} (and {len(bad) - 1} more)"


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


class HttpCollector:
    """A collector that is one `HttpServer` serving one `Endpoint` (built at `start`, when
    the token is read, so a rotated token file takes effect on restart)."""

    def __init__(
        self,
        name: str,
        listen: str,
        build: Callable[[], Endpoint],
        fmt: str | None,
    ) -> None:
        where = parse_listen(listen)
        self.name = name
        self.format = fmt  # what the spool's lines are read as (None: recognized)
        self.host = where.host
        self.path = where.path or "/"
        self._port = where.port  # 0: a free one, read back once started
        self._build = build
        self._server: HttpServer | None = None

    def start(self) -> None:
        endpoint = self._build()
        self._server = HttpServer(self.name, self.host, self._port, app(endpoint, self.path))
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the free one picked for port 0)."""
        return self._server.port if self._server is not None else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @property
    def address(self) -> str:
        """Where senders POST (the free port picked for port 0 once started)."""
        return self.url

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.listening
