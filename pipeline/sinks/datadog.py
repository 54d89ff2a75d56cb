"""Datadog: the Logs intake (`/api/v2/logs`, batched) or the Events API (`/api/v1/events`,
one event a request), authenticated by the `DD-API-KEY` header.

Logs carry the alert in the sink's format plus `ddsource`, `service`, `hostname`,
`ddtags` (`alert_id:`, `severity:`, `detector:` and the configured tags), `status` and
`message`. Events carry `aggregation_key` = the alert id, so Datadog rolls the revisions
of one incident up into one.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime
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
from pipeline.sinks.payloads import VERSION, NativeRecord, detectors_of, render, title
from pipeline.sinks.settings import DatadogSink

_STATUS = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
_ALERT_TYPE = {"low": "info", "medium": "warning", "high": "error", "critical": "error"}


class DatadogSender:
    def __init__(self, cfg: DatadogSink) -> None:
        self.cfg, self.name = cfg, cfg.name
        self.batch_size = cfg.batch_size if cfg.intake == "logs" else 1
        if cfg.url:
            base = cfg.url
        elif cfg.intake == "logs":
            base = f"https://http-intake.logs.{cfg.site}"
        else:
            base = f"https://api.{cfg.site}"
        self.url = base + ("/api/v2/logs" if cfg.intake == "logs" else "/api/v1/events")
        self.host = socket.gethostname()
        self._client: httpx.Client | None = None
        self._scrub = Scrubber()
        self.fixes = {
            403: "Datadog refused the API key: check api_key_env/api_key_file and that the "
            f"key belongs to the site {cfg.site!r} (datadoghq.eu keys do not work on .com)",
            401: "Datadog wants an API key: check api_key_env/api_key_file",
            400: "Datadog rejected the payload: see its answer above",
            413: "a request was too large: lower batch_size or evidence_limit",
            404: f"nothing answers at {self.url}: check `site` or `url`",
            0: "Datadog rejected the request: see its answer above",
        }

    def __repr__(self) -> str:
        return f"DatadogSender({self.name!r}, {self.url!r})"

    def start(self) -> None:
        key = read_secret(self.cfg, "api_key")
        self._scrub = Scrubber(key)
        self._client = http_client(
            self.cfg,
            {
                "dd-api-key": key or "",
                "content-type": "application/json",
                "user-agent": f"secretwatch/{VERSION}",
            },
        )

    def _tags(self, alert: NativeRecord) -> list[str]:
        detectors = detectors_of(alert)
        return [
            f"alert_id:{alert['id']}",
            f"severity:{alert['severity']}",
            *(f"detector:{d}" for d in detectors),
            *self.cfg.tags,
        ]

    def log(self, item: Outgoing) -> dict[str, Any]:
        alert = item.alert
        return {
            **render(self.cfg.format, alert),
            "ddsource": "secretwatch",
            "service": self.cfg.service,
            "hostname": self.host,
            "ddtags": ",".join(self._tags(alert)),
            "status": _STATUS.get(alert["severity"], "info"),
            "message": alert["explanation"],
            "alert_id": item.alert_id,
            "revision": item.revision,
        }

    def event(self, item: Outgoing) -> dict[str, Any]:
        alert = item.alert
        stamp = alert["timestamp"]
        when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
        return {
            "title": f"secretwatch {title(alert)}"[:100],
            "text": f"{alert['explanation']}\n\nalert {item.alert_id} revision {item.revision}"[
                :4000
            ],
            "alert_type": _ALERT_TYPE.get(alert["severity"], "info"),
            "aggregation_key": item.alert_id[:100],
            "source_type_name": "secretwatch",
            "date_happened": int(when.timestamp()),
            "host": self.host,
            "tags": self._tags(alert),
        }

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._client is None:
            raise SinkError(f"sink {self.name!r} is not started")
        if self.cfg.intake == "logs":
            body = dumps([self.log(o) for o in batch])
        else:
            body = dumps(self.event(batch[0]))  # batch_size is 1 for events
        post(self._client, self.url, f"Datadog {self.url}", self._scrub, self.fixes, content=body)
        return {}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
