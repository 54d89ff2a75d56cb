"""Microsoft Sentinel through the Azure Monitor Logs Ingestion API.

An app registration's client credentials buy a bearer token for `scope` from
`{authority}/{tenant_id}/oauth2/v2.0/token`; batches go as JSON arrays to
`{endpoint}/dataCollectionRules/{dcr_immutable_id}/streams/{stream_name}
?api-version=2023-01-01`, which answers 204. Each row is the alert in the sink's format
with `TimeGenerated` (the alert's time) added; the data collection rule's stream declares
the columns (README: "Microsoft Sentinel"). Requests stay under the API's 1 MB limit by
splitting a batch. The token is cached until a minute before it expires, and fetched again
once if the API answers 401.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from pipeline.sinks.base import (
    Outgoing,
    Scrubber,
    SinkError,
    dumps,
    http_client,
    post,
    read_secret,
    status_error,
)
from pipeline.sinks.payloads import VERSION, render
from pipeline.sinks.settings import SentinelSink

API_VERSION = "2023-01-01"
MAX_REQUEST = 1_000_000  # bytes per call, the API's limit


class SentinelSender:
    def __init__(self, cfg: SentinelSink) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, cfg.batch_size
        self.url = (
            f"{cfg.endpoint}/dataCollectionRules/{cfg.dcr_immutable_id}/streams/{cfg.stream_name}"
        )
        self.token_url = f"{cfg.authority}/{cfg.tenant_id}/oauth2/v2.0/token"
        self._secret: str | None = None
        self._token: tuple[str, float] | None = None  # (token, monotonic expiry)
        self._token_lock = threading.Lock()  # concurrent requests share one token
        self._client: httpx.Client | None = None
        self._scrub = Scrubber()
        self.fixes = {
            401: "Azure refused the token: check tenant_id, client_id and the client secret "
            "(client_secret_env/client_secret_file), and that the secret has not expired",
            403: "the app registration may not ingest through this rule: assign it the "
            "'Monitoring Metrics Publisher' role on the data collection rule",
            404: "no such rule or stream: check endpoint, dcr_immutable_id and stream_name",
            400: "Azure rejected the token request or the rows: check tenant_id/client_id, "
            "and that the rule's stream declares the columns this format sends",
            413: "a request exceeded 1 MB: lower batch_size or evidence_limit",
            0: "Azure rejected the request: see its answer above",
        }

    def __repr__(self) -> str:
        return f"SentinelSender({self.name!r}, {self.url!r})"

    def start(self) -> None:
        self._secret = read_secret(self.cfg, "client_secret")
        self._scrub = Scrubber(self._secret)
        self._client = http_client(self.cfg, {"user-agent": f"secretwatch/{VERSION}"})

    def _bearer(self) -> str:
        """A cached token, or a new one from the client-credentials flow."""
        with self._token_lock:
            return self._cached_or_new()

    def _cached_or_new(self) -> str:
        assert self._client is not None  # noqa: S101 - checked by send
        if self._token and time.monotonic() < self._token[1]:
            return self._token[0]
        response = post(
            self._client,
            self.token_url,
            f"Azure token endpoint {self.token_url}",
            self._scrub,
            self.fixes,
            data={
                "client_id": self.cfg.client_id,
                "client_secret": self._secret or "",
                "scope": self.cfg.scope,
                "grant_type": "client_credentials",
            },
        )
        try:
            answer = response.json()
            token, lifetime = str(answer["access_token"]), float(answer.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise SinkError("Azure token endpoint answered without an access_token") from None
        self._scrub = Scrubber(self._secret, token)
        self._token = (token, time.monotonic() + max(0.0, lifetime - 60))
        return token

    def rows(self, batch: Sequence[Outgoing]) -> list[dict[str, Any]]:
        return [
            {"TimeGenerated": o.alert["timestamp"], **render(self.cfg.format, o.alert)}
            for o in batch
        ]

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._client is None:
            raise SinkError(f"sink {self.name!r} is not started")
        for chunk in _chunks([dumps(r) for r in self.rows(batch)], MAX_REQUEST):
            self._post(b"[" + b",".join(chunk) + b"]")
        return {}

    def _post(self, body: bytes) -> None:
        assert self._client is not None  # noqa: S101 - checked by send
        what = f"Azure Monitor Logs Ingestion {self.url}"
        for fresh in (False, True):
            headers = {
                "authorization": f"Bearer {self._bearer()}",
                "content-type": "application/json",
            }
            try:
                response = self._client.post(
                    self.url, params={"api-version": API_VERSION}, content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                raise SinkError(f"{what}: {type(exc).__name__}: {self._scrub(str(exc))}") from exc
            if response.is_success:
                return
            if response.status_code == 401 and not fresh:
                self._token = None  # expired or revoked early: one more try with a new one
                continue
            raise status_error(response, what, self._scrub, self.fixes)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _chunks(rows: list[bytes], limit: int) -> list[list[bytes]]:
    """Rows grouped so each JSON array stays under `limit` bytes (a larger row alone).

    >>> [len(c) for c in _chunks([b"x" * 40] * 5, 100)]
    [2, 2, 1]
    """
    chunks: list[list[bytes]] = [[]]
    size = 2
    for row in rows:
        if chunks[-1] and size + len(row) + 1 > limit:
            chunks.append([])
            size = 2
        chunks[-1].append(row)
        size += len(row) + 1
    return chunks
