"""One HTTP listener in a thread (uvicorn serving a Starlette app), and the request helpers
every HTTP receiver shares: bearer tokens, bounded and optionally gzipped bodies.

The socket is bound in `start`, in the caller's thread, so a port in use is a clear error
at startup rather than a log line later; port 0 picks a free port (tests), read back from
`port`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading
import time
import zlib

import uvicorn
from starlette.requests import Request
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)
START_SECONDS = 10.0
HEADER_SECONDS = 10.0  # for a request's line and headers, from connecting or the last answer


class BodyTooLarge(Exception):  # noqa: N818 - a signal, answered 413
    pass


class _HeadersDue(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers: uvicorn has no
    timer before a connection's first request, and any byte resets its keep-alive timer, so
    idle or trickling connections would hold the connection limit and lock senders out."""

    header_seconds = HEADER_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._due.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        before = self.cycle
        self._due = self.loop.call_later(self.header_seconds, self._overdue, before)

    def _overdue(self, before: object) -> None:
        if self.cycle is before and not self.transport.is_closing():
            self.transport.close()  # no new request's headers arrived in time


class HttpServer:
    """Serves `app` on host:port from a daemon thread until `stop`. At most `connections`
    connections at once (beyond: 503), each with `header_seconds` to send its headers."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        app: ASGIApp,
        connections: int = 512,
        header_seconds: float = HEADER_SECONDS,
    ):
        self.name = name
        self.host = host
        self._wanted = port
        self.port = port
        self._app = app
        self._concurrency = connections
        self._protocol = type("HeadersDue", (_HeadersDue,), {"header_seconds": header_seconds})
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._wanted))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"{self.name}: cannot listen on {self.host}:{self._wanted}: {exc.strerror}"
            ) from None
        sock.listen(512)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=self._protocol,
            limit_concurrency=self._concurrency,  # beyond: 503, never unbounded memory
            timeout_keep_alive=15,
            h11_max_incomplete_event_size=64 * 1024,  # request line and headers
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"http-{self.name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"{self.name}: the HTTP server did not start")
            time.sleep(0.01)

    @property
    def listening(self) -> bool:
        return bool(self._server and self._server.started and not self._server.should_exit)

    def stop(self) -> None:
        """Stop accepting; requests in flight are finished first (uvicorn's graceful exit)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)


def authorized(request: Request, token: str | None) -> bool:
    """True when no token is required, or `Authorization: Bearer <token>` matches it."""
    if token is None:
        return True
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, gunzipped when `Content-Encoding: gzip`, at most `max_bytes` after
    inflating; `BodyTooLarge` as soon as it would be more (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"body of {int(declared):,} bytes is over {max_bytes:,}")
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, max_bytes + 1 - size)
            except zlib.error as exc:
                raise ValueError(f"not valid gzip: {exc}") from None
            if inflate.unconsumed_tail:
                raise BodyTooLarge(f"body inflates past {max_bytes:,} bytes")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"body is over {max_bytes:,} bytes")
        parts.append(chunk)
    if inflate is not None and not inflate.eof and size:
        raise ValueError("not valid gzip: the stream is cut short")
    return b"".join(parts)
