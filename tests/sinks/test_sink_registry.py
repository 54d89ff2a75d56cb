"""Every sink type's settings model makes its sender, with no I/O until `start()`."""

from __future__ import annotations

from pathlib import Path

from test_settings import EVERY_TYPE, _load

from pipeline.sinks import SINKS, make_sink

SENDERS = {
    "webhook": "WebhookSender",
    "splunk": "SplunkSender",
    "elasticsearch": "ElasticsearchSender",
    "sentinel": "SentinelSender",
    "datadog": "DatadogSender",
    "pagerduty": "PagerDutySender",
    "jsonl": "JsonlFileSink",
    "stdout": "StdoutLinesSink",
}


def test_every_settings_type_makes_its_sender_named_after_its_entry(tmp_path: Path) -> None:
    cfg = _load(tmp_path, EVERY_TYPE)
    assert [s.type for s in cfg.sinks] == list(SINKS) == list(SENDERS)
    for entry in cfg.sinks:
        sender = make_sink(entry)
        assert type(sender).__name__ == SENDERS[entry.type]
        assert sender.name == entry.name
        assert 1 <= sender.batch_size <= entry.batch_size  # Datadog events go one by one
