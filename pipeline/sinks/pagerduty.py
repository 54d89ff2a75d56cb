"""PagerDuty Events API v2: one `trigger` per alert revision, `dedup_key` = the alert id.

PagerDuty folds triggers with the same dedup_key into one open incident, so an updated
alert (a higher revision) adds to the page rather than paging again. When an analyst
resolves the alert, a `resolve` event with the same key closes the incident (`resolve:
false` turns that off). By default only high and critical alerts are routed here.
"""

from __future__ import annotations

import socket
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
)
from pipeline.sinks.payloads import VERSION, detectors_of, render, title
from pipeline.sinks.settings import PagerDutySink

_SEVERITY = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}


class PagerDutySender:
    def __init__(self, cfg: PagerDutySink) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, 1
        self.source = cfg.source or socket.gethostname()
        self._key: str | None = None
        self._client: httpx.Client | None = None
        self._scrub = Scrubber()
        self.fixes = {
            400: "PagerDuty rejected the event: check routing_key_env/routing_key_file holds "
            "an Events API v2 integration key of the service (32 characters)",
            401: "PagerDuty refused the request: check the routing key",
            403: "PagerDuty refused the request: check the routing key and the service",
            404: f"nothing answers at {cfg.url}: check `url`",
            0: "PagerDuty rejected the event: see its answer above",
        }

    def __repr__(self) -> str:
        return f"PagerDutySender({self.name!r}, {self.cfg.url!r})"

    def start(self) -> None:
        self._key = read_secret(self.cfg, "routing_key")
        self._scrub = Scrubber(self._key)
        self._client = http_client(
            self.cfg, {"content-type": "application/json", "user-agent": f"secretwatch/{VERSION}"}
        )

    def event(self, item: Outgoing) -> dict[str, Any]:
        alert = item.alert
        if alert.get("resolution") and self.cfg.resolve:
            return {"routing_key": self._key, "event_action": "resolve", "dedup_key": item.alert_id}
        detectors = detectors_of(alert)
        return {
            "routing_key": self._key,
            "event_action": "trigger",
            "dedup_key": item.alert_id,
            "payload": {
                "summary": f"secretwatch {title(alert)}: {alert['explanation']}"[:1024],
                "source": self.source,
                "severity": _SEVERITY.get(alert["severity"], "warning"),
                "timestamp": str(alert["timestamp"]),
                "component": alert["identity"],
                "group": "secretwatch",
                "class": ",".join(detectors),
                "custom_details": render(self.cfg.format, alert),
            },
            "client": "secretwatch",
        }

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._client is None:
            raise SinkError(f"sink {self.name!r} is not started")
        for item in batch:
            if item.alert.get("resolution") and not self.cfg.resolve:
                continue  # the page stays as it is; nothing to tell PagerDuty
            post(
                self._client,
                self.cfg.url,
                f"PagerDuty {self.cfg.url}",
                self._scrub,
                self.fixes,
                content=dumps(self.event(item)),
            )
        return {}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
