"""The service's Starlette app: /healthz, /readyz and /metrics, plus whatever routes the
service adds (the query API: `pipeline.api.queries.query_routes`).

/healthz answers 200 once every collector listens (else 503 naming those that do not),
/readyz 200 once the reader has caught up with the spools after start; both stay open to
probes without a token. /metrics needs the API token when one is configured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pipeline.collectors.http import authorized

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format


@dataclass
class Probes:
    """What the app asks the running service."""

    not_listening: Callable[[], list[str]]  # names of collectors not listening
    ready: Callable[[], bool]  # has the reader caught up since start
    metrics: Callable[[], bytes]  # the Prometheus text


def make_app(
    probes: Probes, token: str | None = None, routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """The app; `routes` are added as they are (they check the token themselves)."""

    def healthz(request: Request) -> Response:
        down = probes.not_listening()
        if down:
            return JSONResponse({"status": "starting", "not_listening": down}, status_code=503)
        return JSONResponse({"status": "ok"})

    def readyz(request: Request) -> Response:
        if probes.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "catching up with the spools"}, status_code=503)

    def metrics(request: Request) -> Response:
        if not authorized(request, token):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        return Response(probes.metrics(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *routes,
        ]
    )
