"""Collector registry: `type` in a `collectors:` entry picks a module under
pipeline/collectors/, imported only when a config names it (boto3 or a Kafka client is
loaded by the service that uses it, not by every command).

Each module exposes `make(settings, intake) -> Collector`. What a collector spools is one
record or document per line in one fixed format, read later by the file follower with
that format (`spool_format`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # base.py brings in the spool and the store: not for reading settings
    from pipeline.collectors.base import Collector, Intake
    from pipeline.collectors.settings import CollectorSettings

COLLECTORS: dict[str, str] = {
    "vault_socket": "vault_socket",
    "k8s_webhook": "k8s_webhook",
    "http_ndjson": "http_ndjson",
    "gcp_pubsub_push": "gcp_pubsub_push",
    "cloudtrail_sqs": "cloudtrail_sqs",
    "azure_eventhubs": "azure_eventhubs",
    "file": "file",
}

# The source format of a collector type's spool lines; `http_ndjson` spools in its
# settings' `format` (None: recognized per stream, as `ingest` does).
SPOOL_FORMAT: dict[str, str] = {
    "vault_socket": "vault",
    "k8s_webhook": "k8s",
    "gcp_pubsub_push": "gcp",
    "cloudtrail_sqs": "aws",
    "azure_eventhubs": "azure",
}


def spool_format(settings: CollectorSettings) -> str | None:
    """The format the follower reads this collector's spool (or files) with."""
    if settings.type in SPOOL_FORMAT:
        return SPOOL_FORMAT[settings.type]
    return getattr(settings, "format", None)


def make_collector(settings: CollectorSettings, intake: Intake) -> Collector:
    """The collector `settings` describe, not yet started."""
    module: Any = importlib.import_module(f"pipeline.collectors.{COLLECTORS[settings.type]}")
    collector: Collector = module.make(settings, intake)
    return collector


__all__ = ["COLLECTORS", "SPOOL_FORMAT", "make_collector", "spool_format"]
