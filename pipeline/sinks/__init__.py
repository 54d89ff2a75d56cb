"""Sink registry: `type` in each `sinks:` entry of the config picks one.

>>> sorted(SINKS)
['datadog', 'elasticsearch', 'jsonl', 'pagerduty', 'sentinel', 'splunk', 'stdout', 'webhook']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.errors import ConfigError
from pipeline.sinks.base import Sink
from pipeline.sinks.datadog import DatadogSender
from pipeline.sinks.elasticsearch import ElasticsearchSender
from pipeline.sinks.jsonl import JsonlFileSink, StdoutLinesSink
from pipeline.sinks.pagerduty import PagerDutySender
from pipeline.sinks.sentinel import SentinelSender
from pipeline.sinks.splunk import SplunkSender
from pipeline.sinks.webhook import WebhookSender

SINKS: dict[str, Callable[[Any], Sink]] = {
    "webhook": WebhookSender,
    "splunk": SplunkSender,
    "elasticsearch": ElasticsearchSender,
    "sentinel": SentinelSender,
    "datadog": DatadogSender,
    "pagerduty": PagerDutySender,
    "jsonl": JsonlFileSink,
    "stdout": StdoutLinesSink,
}


def make_sink(cfg: Any) -> Sink:
    """The sink a `sinks:` entry describes (not started: no I/O yet)."""
    try:
        factory = SINKS[cfg.type]
    except KeyError:
        raise ConfigError(
            f"sink {cfg.name!r}: unknown type {cfg.type!r}; valid: {', '.join(SINKS)}"
        ) from None
    return factory(cfg)
