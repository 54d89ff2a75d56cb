"""The azure_eventhubs collector: Key Vault diagnostic logs from an event hub, read through
Event Hubs' Kafka endpoint.

Event Hubs speaks the Kafka protocol on port 9093 with SASL PLAIN over TLS: the user is
the literal `$ConnectionString` and the password the namespace's (or hub's) connection
string, read from `connection_string_env` or `connection_string_file` and never logged.
Each Kafka record's value is one `{"records": [...]}` envelope of `AuditEvent`s, spooled
as one compact line (the azure parser unwraps it).

Offsets are committed by hand, only after `intake.accept` has returned for the batch the
poll brought: a killed service reads the uncommitted batch again (at least once; the
store keeps each `event_id` once). A value that is not JSON is a dead letter naming its
topic, partition and offset, and its offset is committed with the batch: the stream goes
on. When the spool cannot be written the consumer seeks back to the batch's first
offsets and tries again after a pause, without committing.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pipeline.bus.kafka import (
    ConsumerRecord,
    KafkaConsumer,
    KafkaError,
    OffsetAndMetadata,
    TopicPartition,
)
from pipeline.collectors.base import Intake
from pipeline.collectors.settings import AzureEventhubs
from pipeline.errors import ConfigError
from pipeline.errortext import clean_error

log = logging.getLogger(__name__)

USERNAME = "$ConnectionString"  # what Event Hubs' Kafka endpoint expects, literally
BOOTSTRAP_SECONDS = 30.0  # to reach the endpoint and authenticate at start
POLL_MS = 500
ERROR_PAUSE_SECONDS = 5.0  # after a failed poll or an unwritable spool

Batches = Mapping[TopicPartition, Sequence[ConsumerRecord]]


class AzureEventhubsCollector:
    def __init__(
        self,
        settings: AzureEventhubs,
        intake: Intake,
        bootstrap_seconds: float = BOOTSTRAP_SECONDS,
        error_pause: float = ERROR_PAUSE_SECONDS,
    ) -> None:
        self.name = settings.label
        self.settings = settings
        self.intake = intake
        self.bootstrap_seconds = bootstrap_seconds
        self.error_pause = error_pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned = False

    _consumer: KafkaConsumer  # made by start()

    @property
    def address(self) -> str:
        """What it reads, for the service's startup message."""
        s = self.settings
        return f"consumes {s.topic} at {s.bootstrap} (group {s.group})"

    @property
    def listening(self) -> bool:
        """True once the group has assigned this consumer partitions of the hub."""
        return self._assigned and self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Connect and authenticate (ConfigError naming the reason when that fails), join
        the consumer group and start reading in a daemon thread."""
        s = self.settings
        options: dict[str, Any] = {
            "bootstrap_servers": s.bootstrap,
            "security_protocol": s.security_protocol,
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": USERNAME,
            "sasl_plain_password": s.connection_string(),
            "group_id": s.group,
            "client_id": f"secretwatch-{self.name}",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "bootstrap_timeout_ms": int(self.bootstrap_seconds * 1000),
            "session_timeout_ms": s.session_timeout_ms,
            "heartbeat_interval_ms": min(3_000, s.session_timeout_ms // 3),
            # Event Hubs closes connections idle for 240 s; Microsoft's advice for clients:
            "connections_max_idle_ms": 180_000,
            "metadata_max_age_ms": 180_000,
        }
        if s.ssl_cafile is not None:
            options["ssl_cafile"] = str(s.ssl_cafile)
        refused = _AuthFailures()
        logging.getLogger("kafka").addHandler(refused)
        try:
            consumer = KafkaConsumer(**options)
        except (KafkaError, OSError, ValueError) as exc:
            if refused.seen:
                reason = "SASL PLAIN authentication failed: the connection string was refused"
            elif _reachable(s.bootstrap):
                reason = (
                    "the endpoint answers but let this client in on no broker: most likely "
                    "SASL PLAIN authentication failed (a wrong or expired connection string); "
                    f"else security_protocol {s.security_protocol} is not what it speaks, or "
                    "its TLS certificate is not trusted (ssl_cafile)"
                )
            else:
                reason = f"cannot connect: {_why(exc)}"
            where = f"collector {self.name}: Event Hubs at {s.bootstrap}"
            raise ConfigError(f"{where}: {reason}") from None
        finally:
            logging.getLogger("kafka").removeHandler(refused)
        consumer.subscribe([s.topic])
        self._consumer = consumer
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"collector-{self.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch in hand (spooled and committed, or not at all)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._assigned = False

    def _run(self) -> None:
        consumer = self._consumer
        try:
            while not self._stop.is_set():
                try:
                    batches: Batches = consumer.poll(timeout_ms=POLL_MS)
                except KafkaError as exc:
                    log.warning("collector %s: polling failed: %s", self.name, _why(exc))
                    self._stop.wait(self.error_pause)
                    continue
                self._assigned = bool(consumer.assignment())
                if batches:
                    self._take(batches)
        finally:
            consumer.close(autocommit=False)

    def _take(self, batches: Batches) -> None:
        """Spool a poll's records, then dead-letter its unreadable ones, then commit."""
        lines: list[bytes] = []
        dead: list[tuple[str, str, bytes]] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in batches.items():
            for record in records:
                where = f"topic {record.topic} partition {record.partition} offset {record.offset}"
                value = record.value
                if not value:
                    dead.append((where, "a record without a value", b""))
                    continue
                try:
                    lines.append(orjson.dumps(orjson.loads(value)))
                except orjson.JSONDecodeError as exc:
                    dead.append((where, f"not JSON: {exc}", value))
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        try:
            self.intake.accept(lines)
        except (OSError, ValueError) as exc:
            log.error(
                "collector %s: the spool cannot be written, reading the batch again: %s",
                self.name,
                exc,
            )
            self._rewind(batches)
            self._stop.wait(self.error_pause)
            return
        for where, reason, raw in dead:
            self.intake.reject(where, reason, raw, "azure")
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance: the new owner reads them again, deduped
            log.warning("collector %s: committing offsets failed: %s", self.name, _why(exc))

    def _rewind(self, batches: Batches) -> None:
        for tp, records in batches.items():
            try:
                self._consumer.seek(tp, records[0].offset)
            except (KafkaError, AssertionError, ValueError) as exc:  # no longer ours
                log.info("collector %s: not rewinding %s: %s", self.name, tp, exc)


class _AuthFailures(logging.Handler):
    """Notices kafka-python's log of a refused SASL handshake: it retries until the
    bootstrap times out and then reports only the timeout."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if any(type(a).__name__ == "SaslAuthenticationFailedError" for a in args):
            self.seen = True


def _reachable(bootstrap: str) -> bool:
    """Whether any bootstrap server accepts a TCP connection (so a failure is the handshake's)."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
                return True
        except (OSError, ValueError):
            continue
    return False


def _why(exc: BaseException) -> str:
    return clean_error(str(exc)) or type(exc).__name__


def make(settings: AzureEventhubs, intake: Intake) -> AzureEventhubsCollector:
    return AzureEventhubsCollector(settings, intake)
