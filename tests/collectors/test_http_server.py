"""The HTTP listener every receiver and the API use: idle or trickling connections cannot
lock senders out, and bodies are bounded."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pipeline.collectors.http import HttpServer


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    app = Starlette(routes=[Route("/", _ok, methods=["POST"])])
    srv = HttpServer("t", "127.0.0.1", 0, app, connections=8, header_seconds=0.5)
    srv.start()
    yield srv
    srv.stop()


def _closed(sock: socket.socket, within: float) -> bool:
    """True once the server closed `sock` (reads EOF), waiting at most `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_idle_connections_are_closed_and_cannot_lock_senders_out(server: HttpServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
    try:
        # More idle connections than the limit: all are closed by the header deadline...
        assert all(_closed(s, within=10) for s in idle)
        # ...after which a sender gets through.
        deadline = time.monotonic() + 10
        while True:
            status = httpx.post(f"http://127.0.0.1:{server.port}/", content=b"x").status_code
            if status == 200 or time.monotonic() > deadline:
                break
        assert status == 200
    finally:
        for s in idle:
            s.close()


def test_a_trickling_request_is_cut_at_the_header_deadline(server: HttpServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        sent_until = time.monotonic() + 8
        closed = False
        for byte in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed(sock, within=0.05):
                closed = True
                break
            if time.monotonic() > sent_until:
                break
        assert closed, "a request trickling in a byte at a time was never cut"
    finally:
        sock.close()


def test_a_kept_alive_connection_gets_a_new_deadline_per_request(server: HttpServer) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            assert client.post(f"http://127.0.0.1:{server.port}/", content=b"x").status_code == 200
