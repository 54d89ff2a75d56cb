"""Splunk HTTP Event Collector: batched events to /services/collector/event.

A batch is one POST of concatenated event objects, each with `time` (the alert's, epoch
seconds), `host`, `source`, `sourcetype`, `index` (if set), `event` (the alert in the
sink's format) and the indexed `fields` alert_id and revision. With `ack: true` every
request names a channel (`X-Splunk-Request-Channel`) and the batch counts as delivered
only once /services/collector/ack reports its ackId indexed. Splunk does not deduplicate:
a batch retried after a lost answer is indexed twice, so searches use
`| dedup alert_id revision`.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from pipeline.sinks.base import Outgoing, Scrubber, SinkError, dumps, http_client, post, read_secret
from pipeline.sinks.payloads import VERSION, render
from pipeline.sinks.settings import SplunkSink

ACK_POLL_S = 0.2


class SplunkSender:
    def __init__(self, cfg: SplunkSink) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, cfg.batch_size
        self.channel = cfg.channel or str(uuid.uuid5(uuid.NAMESPACE_URL, f"secretwatch/{cfg.name}"))
        self.host = cfg.host or socket.gethostname()
        self._client: httpx.Client | None = None
        self._scrub = Scrubber()
        self.fixes = {
            401: "Splunk wants a HEC token: check token_env/token_file",
            403: "Splunk refused the HEC token (unknown or disabled): check token_env/"
            "token_file and that the token is enabled under Settings > Data inputs > HTTP "
            "Event Collector",
            400: "Splunk rejected the events: check that the token may write to `index`"
            + (" and has indexer acknowledgement enabled (ack: true)" if cfg.ack else ""),
            404: f"no HTTP Event Collector at {cfg.url}: check `url` (the HEC port, often "
            "8088) and that HEC is enabled in Global Settings",
            0: "Splunk rejected the request: see its answer above",
        }

    def __repr__(self) -> str:
        return f"SplunkSender({self.name!r}, {self.cfg.url!r})"

    def start(self) -> None:
        token = read_secret(self.cfg, "token")
        self._scrub = Scrubber(token)
        self._client = http_client(
            self.cfg,
            {
                "authorization": f"Splunk {token}",
                "content-type": "application/json",
                "user-agent": f"secretwatch/{VERSION}",
                "x-splunk-request-channel": self.channel,
            },
        )

    def event(self, item: Outgoing) -> dict[str, Any]:
        alert = item.alert
        stamp = alert["timestamp"]
        when = (stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)).timestamp()
        event: dict[str, Any] = {
            "time": round(when, 6),
            "host": self.host,
            "source": self.cfg.source,
            "sourcetype": self.cfg.sourcetype,
            "event": render(self.cfg.format, alert),
            "fields": {"alert_id": item.alert_id, "revision": str(item.revision)},
        }
        if self.cfg.index:
            event["index"] = self.cfg.index
        return event

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._client is None:
            raise SinkError(f"sink {self.name!r} is not started")
        body = b"".join(dumps(self.event(o)) for o in batch)
        url = f"{self.cfg.url}/services/collector/event"
        response = post(
            self._client, url, f"Splunk HEC {url}", self._scrub, self.fixes, content=body
        )
        if self.cfg.ack:
            self._await_ack(response)
        return {}

    def _await_ack(self, response: httpx.Response) -> None:
        """Poll /services/collector/ack until Splunk reports the batch indexed."""
        assert self._client is not None  # noqa: S101 - checked by send
        try:
            ack_id = int(response.json()["ackId"])
        except (ValueError, KeyError, TypeError):
            raise SinkError(
                "Splunk HEC answered without an ackId although ack: true; enable indexer "
                "acknowledgement on the token, or set ack: false",
                400,
                fix="enable indexer acknowledgement on the HEC token or set ack: false",
            ) from None
        url = f"{self.cfg.url}/services/collector/ack"
        deadline = time.monotonic() + self.cfg.ack_timeout.total_seconds()
        while True:
            answer = post(
                self._client,
                url,
                f"Splunk HEC ack {url}",
                self._scrub,
                self.fixes,
                params={"channel": self.channel},
                content=dumps({"acks": [ack_id]}),
            )
            try:
                if answer.json()["acks"].get(str(ack_id)) is True:
                    return
            except (ValueError, KeyError, AttributeError):
                raise SinkError(
                    f"Splunk HEC ack answer is not JSON acks: {self._scrub(answer.text)}"
                ) from None
            if time.monotonic() >= deadline:
                raise SinkError(
                    f"Splunk did not acknowledge ackId {ack_id} within "
                    f"{self.cfg.ack_timeout.total_seconds():g} s; the batch is sent again"
                )
            time.sleep(ACK_POLL_S)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
