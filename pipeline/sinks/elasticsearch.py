"""Elasticsearch (or OpenSearch-compatible _bulk): alert documents, ECS by default.

Into an index, each alert is one document with `_id` = the alert id, written with
`version` = its revision (`version_type: external_gte`), so retries are idempotent, an
updated incident replaces the older revision, and a late older revision never overwrites
a newer one (Elasticsearch answers 409, which counts as delivered). Into a data stream
(append-only) each revision is its own document, `_id` = `<alert id>.r<revision>`,
created once (409 again means "already there").
"""

from __future__ import annotations

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
from pipeline.sinks.payloads import VERSION, render
from pipeline.sinks.settings import ElasticsearchSink


class ElasticsearchSender:
    def __init__(self, cfg: ElasticsearchSink) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, cfg.batch_size
        self._client: httpx.Client | None = None
        self._scrub = Scrubber()
        self.fixes = {
            401: "Elasticsearch refused the credentials: check api_key_env/api_key_file or "
            "username with password_env/password_file",
            403: f"the credentials may not write to {cfg.index!r}: grant the key or user the "
            "`create_doc` and `index` privileges on it",
            404: f"no Elasticsearch _bulk at {cfg.url}: check `url`",
            0: "Elasticsearch rejected the request: see its answer above",
        }

    def __repr__(self) -> str:
        return f"ElasticsearchSender({self.name!r}, {self.cfg.url!r}, {self.cfg.index!r})"

    def start(self) -> None:
        api_key = read_secret(self.cfg, "api_key")
        password = read_secret(self.cfg, "password")
        headers = {"content-type": "application/x-ndjson", "user-agent": f"secretwatch/{VERSION}"}
        if api_key:
            headers["authorization"] = f"ApiKey {api_key}"
        self._scrub = Scrubber(api_key, password)
        self._client = http_client(self.cfg, headers)
        if self.cfg.username and password:
            self._client.auth = httpx.BasicAuth(self.cfg.username, password)

    def _action(self, item: Outgoing) -> tuple[dict[str, Any], dict[str, Any]]:
        doc = render(self.cfg.format, item.alert)
        doc.setdefault("@timestamp", item.alert["timestamp"])  # data streams need it
        if self.cfg.data_stream:
            meta: dict[str, str | int] = {
                "_index": self.cfg.index,
                "_id": f"{item.alert_id}.r{item.revision}",
            }
            return {"create": meta}, doc
        meta = {
            "_index": self.cfg.index,
            "_id": item.alert_id,
            "version": item.revision,
            "version_type": "external_gte",
        }
        return {"index": meta}, doc

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._client is None:
            raise SinkError(f"sink {self.name!r} is not started")
        lines = []
        for item in batch:
            action, doc = self._action(item)
            lines += [dumps(action), dumps(doc)]
        url = f"{self.cfg.url}/_bulk"
        response = post(
            self._client,
            url,
            f"Elasticsearch {url}",
            self._scrub,
            self.fixes,
            content=b"\n".join(lines) + b"\n",
        )
        try:
            answer = response.json()
            items = answer["items"]
        except (ValueError, KeyError, TypeError):
            raise SinkError(
                f"Elasticsearch _bulk answer is not a bulk response: {self._scrub(response.text)}"
            ) from None
        if not answer.get("errors"):
            return {}
        if len(items) != len(batch):
            raise SinkError(f"Elasticsearch answered {len(items)} items for {len(batch)}")
        return {
            item.alert_id: error
            for item, result in zip(batch, items, strict=True)
            if (error := self._item_error(next(iter(result.values())))) is not None
        }

    def _item_error(self, result: dict[str, Any]) -> SinkError | None:
        status = int(result.get("status", 500))
        if status < 300 or status == 409:  # 409: this revision or a newer one is there
            return None
        reason = result.get("error", {})
        text = reason.get("reason", reason) if isinstance(reason, dict) else reason
        kind = reason.get("type", "") if isinstance(reason, dict) else ""
        return SinkError(
            f"Elasticsearch refused the document: HTTP {status} {kind}: {self._scrub(str(text))}",
            status,
            fix="fix the index mapping or template for these fields, or choose another `format`"
            if status == 400
            else self.fixes.get(status),
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
