"""Generic webhook: a JSON POST signed the Standard Webhooks way (see signing.py).

Body: `{"type": "secretwatch.alert", "timestamp": ..., "data": <alert>}`, or with
`batch_size` > 1 `{"type": "secretwatch.alerts", ..., "data": [<alert>, ...]}`. Headers:
- `webhook-id`: `<alert id>.r<revision>` (a batch: `swb-` + a hash of its members), the
  same on every retry of that message, so a receiver drops repeats by it;
- `webhook-timestamp`, `webhook-signature`: `v1,` + base64 HMAC-SHA256 of
  `id.timestamp.body`;
- `Idempotency-Key`: the alert id (single alerts): an updated incident keeps it, with a
  higher `revision` in the body, so a receiver upserts by it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import httpx

from pipeline.errors import ConfigError
from pipeline.sinks.base import Outgoing, Scrubber, SinkError, dumps, http_client, post, read_secret
from pipeline.sinks.payloads import VERSION, render
from pipeline.sinks.settings import WebhookSink
from pipeline.sinks.signing import SignatureError, secret_bytes, sign


def message_id(batch: Sequence[Outgoing]) -> str:
    """The webhook-id: stable across retries of the same alert revisions."""
    if len(batch) == 1:
        return f"{batch[0].alert_id}.r{batch[0].revision}"
    members = ",".join(f"{o.alert_id}.r{o.revision}" for o in batch)
    return "swb-" + hashlib.sha256(members.encode()).hexdigest()[:24]


class WebhookSender:
    def __init__(self, cfg: WebhookSink) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, cfg.batch_size
        self._secret: str | None = None
        self._client: httpx.Client | None = None
        self._scrub = Scrubber()
        self.fixes = {
            401: "the receiver refused the request: check auth_token_env/auth_token_file "
            "and that the receiver verifies with this sink's secret (secret_env/secret_file)",
            403: "the receiver refused the request: check that it knows this sink's signing "
            "secret and that its clock is within 5 minutes of ours",
            404: f"nothing answers at {cfg.url}: check `url`",
            400: f"the receiver rejected the payload: check it accepts format {cfg.format!r}",
            0: "the receiver rejected the request: see its answer above and its logs",
        }

    def __repr__(self) -> str:  # never the secret
        return f"WebhookSender({self.name!r}, {self.cfg.url!r})"

    def start(self) -> None:
        secret = read_secret(self.cfg, "secret")
        assert secret is not None  # noqa: S101 - required by the config model
        try:
            secret_bytes(secret)
        except SignatureError as exc:
            raise ConfigError(f"sink {self.name!r}: the signing secret is invalid: {exc}") from None
        token = read_secret(self.cfg, "auth_token")
        headers = {
            "content-type": "application/json",
            "user-agent": f"secretwatch/{VERSION}",
            **self.cfg.headers,
        }
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._secret, self._scrub = secret, Scrubber(secret, token)
        self._client = http_client(self.cfg, headers)

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._client is None or self._secret is None:
            raise SinkError(f"sink {self.name!r} is not started")
        docs = [render(self.cfg.format, o.alert) for o in batch]
        single = len(batch) == 1
        body = dumps(
            {
                "type": "secretwatch.alert" if single else "secretwatch.alerts",
                "timestamp": max(str(o.alert["timestamp"]) for o in batch),
                "data": docs[0] if single else docs,
            }
        )
        headers = sign(self._secret, message_id(batch), int(time.time()), body)
        if single:
            headers["idempotency-key"] = batch[0].alert_id
        post(
            self._client,
            self.cfg.url,
            f"webhook {self.cfg.url}",
            self._scrub,
            self.fixes,
            content=body,
            headers=headers,
        )
        return {}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
