"""Sink registry: `type` in each `sinks:` entry of the config picks one.

>>> sorted(SINKS)
['datadog', 'elasticsearch', 'jsonl', 'pagerduty', 'sentinel', 'splunk', 'stdout', 'webhook']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from pipeline.errors import ConfigError
from pipeline.sinks.settings import (
    DatadogSink,
    ElasticsearchSink,
    JsonlSink,
    PagerDutySink,
    SentinelSink,
    SinkSettings,
    SplunkSink,
    StdoutSink,
    WebhookSink,
)

if TYPE_CHECKING:
    from pipeline.sinks.base import Sink

# The sink types, as the settings models' `type` values: one per member of SinkSettings.
SINKS: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(SinkSettings)
)


def make_sink(cfg: SinkSettings) -> Sink:
    """The sink a `sinks:` entry describes (not started: no I/O yet), made from that sink
    type's settings model."""
    # The senders are imported here: reading the config imports this package (through
    # settings.py), and a command that delivers nothing needs none of them.
    from pipeline.sinks.datadog import DatadogSender
    from pipeline.sinks.elasticsearch import ElasticsearchSender
    from pipeline.sinks.jsonl import JsonlFileSink, StdoutLinesSink
    from pipeline.sinks.pagerduty import PagerDutySender
    from pipeline.sinks.sentinel import SentinelSender
    from pipeline.sinks.splunk import SplunkSender
    from pipeline.sinks.webhook import WebhookSender

    match cfg:
        case WebhookSink():
            return WebhookSender(cfg)
        case SplunkSink():
            return SplunkSender(cfg)
        case ElasticsearchSink():
            return ElasticsearchSender(cfg)
        case SentinelSink():
            return SentinelSender(cfg)
        case DatadogSink():
            return DatadogSender(cfg)
        case PagerDutySink():
            return PagerDutySender(cfg)
        case JsonlSink():
            return JsonlFileSink(cfg)
        case StdoutSink():
            return StdoutLinesSink(cfg)
        case _:
            raise ConfigError(
                f"sink {cfg.name!r}: unknown type {cfg.type!r}; valid: {', '.join(SINKS)}"
            )
