"""Thin kafka-python helpers: clients built from the `kafka:` config section, topic names and
creation, and the partition an identity's events land on (so a member knows what it owns).

Secrets (the SASL password) come from the environment variable the config names, never from
the file, and are never logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

with warnings.catch_warnings():
    # kafka-python 3.0 reads its protocol schemas with importlib.resources.read_text at
    # import time, deprecated on Python 3.11-3.12; the rest of secretwatch imports kafka
    # through this module, so that warning is silenced here once.
    warnings.filterwarnings("ignore", "(read|open)_text is deprecated", DeprecationWarning)
    from kafka import (
        KafkaAdminClient,
        KafkaConsumer,
        KafkaProducer,
        OffsetAndMetadata,
        TopicPartition,
    )
    from kafka.consumer.fetcher import ConsumerRecord
    from kafka.errors import KafkaError, TopicAlreadyExistsError
    from kafka.partitioner.default import murmur2

if TYPE_CHECKING:

    class ConsumerRebalanceListener(ABC):
        """kafka-python's rebalance listener as mypy sees it: kafka-python has no type
        information, and a class cannot subclass Any under strict checking."""

        @abstractmethod
        def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None: ...

        @abstractmethod
        def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None: ...

        def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
            self.on_partitions_revoked(lost)

else:
    from kafka import ConsumerRebalanceListener  # kafka is imported above: no warning again

from pipeline.config import KafkaConfig
from pipeline.errors import ConfigError, SecretwatchError
from pipeline.record import SOURCES
from pipeline.sources.base import DeadLetter

log = logging.getLogger(__name__)

__all__ = [
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "KafkaAdminClient",
    "KafkaConsumer",
    "KafkaError",
    "KafkaProducer",
    "OffsetAndMetadata",
    "TopicPartition",
]


class BusError(SecretwatchError):
    """Kafka cannot be reached or refused a request; the message names the servers."""


def raw_topic(cfg: KafkaConfig, source: str) -> str:
    """The raw topic of one source.

    >>> raw_topic(KafkaConfig(), "vault")
    'secretwatch.raw.vault'
    """
    return cfg.raw_topic_prefix + source


def raw_topics(cfg: KafkaConfig) -> dict[str, str]:
    """Raw topic -> its source, for every source."""
    return {raw_topic(cfg, s): s for s in SOURCES}


def all_topics(cfg: KafkaConfig) -> list[str]:
    return [*raw_topics(cfg), cfg.events_topic, cfg.dead_letter_topic]


def client_settings(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection settings shared by producer, consumer and admin client."""
    settings: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.ssl_cafile is not None:
        settings["ssl_cafile"] = str(cfg.ssl_cafile)
    if cfg.sasl_mechanism is not None:
        if not cfg.sasl_plain_username or not cfg.sasl_password_env:
            raise ConfigError(
                "kafka.sasl_mechanism needs kafka.sasl_plain_username and "
                "kafka.sasl_password_env (the environment variable holding the password)"
            )
        password = os.environ.get(cfg.sasl_password_env)
        if password is None:
            raise ConfigError(
                f"kafka.sasl_password_env names ${cfg.sasl_password_env}, which is not set"
            )
        settings["sasl_mechanism"] = cfg.sasl_mechanism
        settings["sasl_plain_username"] = cfg.sasl_plain_username
        settings["sasl_plain_password"] = password
    return settings


def _servers(cfg: KafkaConfig) -> str:
    servers = cfg.bootstrap_servers
    return servers if isinstance(servers, str) else ",".join(servers)


def producer(cfg: KafkaConfig, **extra: Any) -> KafkaProducer:
    """A producer whose acknowledged records are on every in-sync replica (acks=all), with
    small lingering so records travel in batches."""
    options: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 << 10,
        "max_request_size": 8 << 20,
        "retries": 10,
    }
    options.update(extra)
    try:
        return KafkaProducer(**client_settings(cfg), **options)
    except KafkaError as exc:
        raise BusError(f"kafka at {_servers(cfg)} cannot be reached: {exc}") from exc


def consumer(cfg: KafkaConfig, group: str, **extra: Any) -> KafkaConsumer:
    """A consumer-group member that commits only when told to (never automatically)."""
    options: dict[str, Any] = {
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": cfg.batch_max_records,
        "session_timeout_ms": cfg.session_timeout_ms,
        "heartbeat_interval_ms": max(1000, cfg.session_timeout_ms // 4),
    }
    options.update(extra)
    try:
        return KafkaConsumer(**client_settings(cfg), **options)
    except KafkaError as exc:
        raise BusError(f"kafka at {_servers(cfg)} cannot be reached: {exc}") from exc


def ensure_topics(cfg: KafkaConfig, topics: list[str] | None = None) -> list[str]:
    """Create the topics that do not exist yet (with `partitions` each); return those made."""
    wanted = topics if topics is not None else all_topics(cfg)
    try:
        admin = KafkaAdminClient(**client_settings(cfg))
    except KafkaError as exc:
        raise BusError(f"kafka at {_servers(cfg)} cannot be reached: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            spec = {"num_partitions": cfg.partitions, "replication_factor": cfg.replication_factor}
            try:
                admin.create_topics({t: spec for t in missing}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                pass  # another member created them at the same moment
        return missing
    except KafkaError as exc:
        raise BusError(f"kafka at {_servers(cfg)}: cannot create topics: {exc}") from exc
    finally:
        admin.close()


PARTITIONS_SECONDS = 60.0


def wait_for_partitions(
    consumer: KafkaConsumer, topics: list[str], stop: threading.Event | None = None
) -> None:
    """Wait until this client's metadata lists partitions for every topic, before it
    subscribes: a member that joins its group while a topic just created has no partition
    leaders yet is assigned nothing, and kafka-python may not ask for a new assignment
    once they appear (a member stayed idle for minutes in a test). BusError after
    PARTITIONS_SECONDS, naming the topics."""
    deadline = time.monotonic() + PARTITIONS_SECONDS
    missing = list(topics)
    while missing:
        missing = [t for t in missing if not consumer.partitions_for_topic(t)]
        if not missing or (stop is not None and stop.is_set()):
            return
        if time.monotonic() > deadline:
            raise BusError(
                f"topics {', '.join(missing)} have no partitions after "
                f"{PARTITIONS_SECONDS:.0f} s; is the broker healthy (leaders elected)?"
            )
        time.sleep(0.2)


IDLE_REJOIN_SECONDS = 30.0


class IdleRejoin:
    """Ask for a new assignment when this member has owned nothing for a while although its
    topics have partitions. A member that joined while the group leader saw no partitions
    yet was assigned nothing and, in a test, stayed so for minutes after another member
    took every partition (kafka-python did not ask again). Leaving and joining again is
    the public way to ask; an idle member that is merely one too many asks again after
    twice as long each time, so the group is rarely disturbed."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        topics: list[str],
        listener: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer, self.topics, self.listener = consumer, topics, listener
        self.clock = clock
        self.wait = IDLE_REJOIN_SECONDS
        self.since = clock()

    def check(self, owns: bool) -> None:
        now = self.clock()
        if owns:
            self.since, self.wait = now, IDLE_REJOIN_SECONDS
            return
        if now - self.since < self.wait:
            return
        self.since, self.wait = now, self.wait * 2
        if any(self.consumer.partitions_for_topic(t) for t in self.topics):
            log.warning(
                "%s: owned no partition of %s for %.0f s; joining the group again",
                self.consumer.config.get("group_id"),
                ", ".join(self.topics),
                self.wait / 2,
            )
            self.consumer.unsubscribe()
            self.consumer.subscribe(self.topics, listener=self.listener)


@lru_cache(maxsize=65536)
def partition_of(key: str, partitions: int) -> int:
    """The partition kafka-python's default partitioner (murmur2, like the Java client)
    gives a record with this key.

    >>> partition_of("orders/orders-api", 4) == partition_of("orders/orders-api", 4)
    True
    """
    hashed: int = murmur2(key.encode())  # kafka-python has no type information
    return (hashed & 0x7FFFFFFF) % partitions


def dead_letter_value(letter: DeadLetter, **where: object) -> bytes:
    """A dead-letter topic record: the reason, where the record was (file and line for
    `ship`, topic/partition/offset for `run`), and its raw bytes with secrets redacted
    (`DeadLetter.of` redacts them)."""
    doc = {
        "reason": letter.reason,
        "format": letter.format,
        "file": letter.file,
        "line": letter.line,
        "offset": letter.offset,
        "index": letter.index,
        **where,
        "raw": letter.raw.decode("utf-8", "replace"),
    }
    return orjson.dumps(doc)


FLUSH_SECONDS = 120.0  # a broker that acknowledges nothing this long is an error, not a wait


def flush(producer: KafkaProducer, errors: SendErrors, what: str) -> None:
    """Wait until every record sent so far is acknowledged; BusError if one was refused or
    Kafka did not answer within FLUSH_SECONDS."""
    try:
        producer.flush(timeout=FLUSH_SECONDS)
    except KafkaError as exc:
        raise BusError(
            f"records to {what} not acknowledged in {FLUSH_SECONDS:.0f} s: {exc}"
        ) from exc
    errors.check(what)


class SendErrors:
    """Collects produce failures from futures' errbacks, so one check after `flush()` tells
    whether every record sent since the last check was acknowledged."""

    def __init__(self) -> None:
        self.first: Exception | None = None
        self.count = 0

    def __call__(self, exc: Exception) -> None:
        self.count += 1
        self.first = self.first or exc

    def check(self, what: str) -> None:
        if self.count:
            n, exc = self.count, self.first
            self.count, self.first = 0, None
            raise BusError(f"{n} records to {what} were not acknowledged: {exc}")
