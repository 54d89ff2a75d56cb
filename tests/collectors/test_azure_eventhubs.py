"""The azure_eventhubs collector against Kafka's SASL PLAIN listener on 127.0.0.1 (the Event
Hubs stand-in that scripts/services runs): envelopes of Key Vault records are spooled as
they came, offsets are committed only once spooled, and a refused connection string is a
clear error at start."""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from services import SaslKafka
from waiting import spooled, wait_until

from pipeline.collectors import make_collector
from pipeline.collectors.azure_eventhubs import USERNAME, AzureEventhubsCollector
from pipeline.collectors.base import Intake
from pipeline.collectors.settings import AzureEventhubs
from pipeline.collectors.spool import Spool
from pipeline.errors import ConfigError
from pipeline.ingest import Ingestor
from pipeline.store.duckdb import DuckDBStore

SAMPLES = sorted((Path(__file__).parents[1] / "fixtures" / "azure_keyvault").glob("*/*.json"))
RECORDS = [orjson.loads(p.read_bytes()) for p in SAMPLES]
ENVELOPES = [
    orjson.dumps({"records": RECORDS[:2]}, option=orjson.OPT_INDENT_2),  # newlines inside
    orjson.dumps({"records": RECORDS[2:3]}),
    orjson.dumps({"records": RECORDS[3:]}),
]
ENV = "SECRETWATCH_TEST_EVENTHUBS_CONNECTION"


def sasl(kafka: SaslKafka, password: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": USERNAME,
        "sasl_plain_password": password or kafka.password,
    }


class Hub:
    """One fresh topic (two partitions) and a group name on the SASL listener."""

    def __init__(self, kafka: SaslKafka) -> None:
        self.kafka = kafka
        self.topic = f"insights-logs-auditevent-{uuid.uuid4().hex[:10]}"
        self.group = f"secretwatch-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(**sasl(kafka), request_timeout_ms=60_000)
        try:
            admin.create_topics([NewTopic(self.topic, num_partitions=2, replication_factor=1)])
        finally:
            admin.close()
        self.producer = KafkaProducer(**sasl(kafka), acks="all")

    def send(self, *values: bytes) -> None:
        for i, value in enumerate(values):
            self.producer.send(self.topic, value=value, partition=i % 2)
        self.producer.flush(timeout=60)

    def committed(self) -> int:
        """Offsets the group has committed, summed over the topic's partitions."""
        consumer = KafkaConsumer(**sasl(self.kafka), group_id=self.group)
        try:
            parts = [TopicPartition(self.topic, p) for p in (0, 1)]
            return sum(consumer.committed(tp) or 0 for tp in parts)
        finally:
            consumer.close()

    def close(self) -> None:
        self.producer.close()


@pytest.fixture
def hub(kafka_sasl: SaslKafka, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv(ENV, kafka_sasl.password)
    made = Hub(kafka_sasl)
    yield made
    made.close()


def settings_of(hub: Hub, **extra: object) -> AzureEventhubs:
    return AzureEventhubs.model_validate(
        {
            "type": "azure_eventhubs",
            "bootstrap": hub.kafka.bootstrap,
            "topic": hub.topic,
            "group": hub.group,
            "security_protocol": "SASL_PLAINTEXT",
            "connection_string_env": ENV,
            **extra,
        }
    )


@pytest.fixture
def start(
    hub: Hub, tmp_path: Path
) -> Iterator[Callable[..., tuple[AzureEventhubsCollector, Intake]]]:
    made: list[AzureEventhubsCollector] = []

    def run(spool: Spool | None = None) -> tuple[AzureEventhubsCollector, Intake]:
        settings = settings_of(hub)
        intake = Intake(settings.label, spool or Spool(tmp_path / f"spool{len(made)}"))
        collector = make_collector(settings, intake)
        assert isinstance(collector, AzureEventhubsCollector)
        collector.start()
        made.append(collector)
        return collector, intake

    yield run
    for collector in made:
        collector.stop()


def test_envelopes_are_spooled_as_they_came_and_committed_after(
    hub: Hub, start: Callable[..., tuple[AzureEventhubsCollector, Intake]], tmp_path: Path
) -> None:
    hub.send(*ENVELOPES, b"<not json>")
    collector, intake = start()
    wait_until(lambda: collector.listening)
    wait_until(lambda: intake.counts.records == 3 and intake.counts.rejected == 1)
    wait_until(lambda: hub.committed() == 4)  # the dead letter's offset too: the stream goes on
    collector.stop()

    lines = spooled(intake.spool)
    assert sorted(lines) == sorted(orjson.dumps(orjson.loads(e)) for e in ENVELOPES)
    (dead,) = intake.take_dead()
    assert dead.file.startswith(f"collector azure_eventhubs: topic {hub.topic} partition 1 offset")
    assert "not JSON" in dead.reason

    with DuckDBStore(tmp_path / "spool.duckdb") as store:
        Ingestor(store, fmt="azure").ingest([str(intake.spool.path)])
        from_spool = set(store.events()["event_id"])
        assert len(store.dead_letters()) == 0
    with DuckDBStore(tmp_path / "direct.duckdb") as store:
        Ingestor(store, fmt="azure").ingest([str(p) for p in SAMPLES])
        direct = set(store.events()["event_id"])
    assert len(direct) == len(RECORDS)
    assert from_spool == direct


def test_a_restarted_collector_does_not_spool_committed_records_again(
    hub: Hub, start: Callable[..., tuple[AzureEventhubsCollector, Intake]]
) -> None:
    hub.send(*ENVELOPES)
    first, intake = start()
    wait_until(lambda: hub.committed() == 3)
    first.stop()
    assert intake.counts.records == 3

    hub.send(ENVELOPES[1], ENVELOPES[2])
    second, again = start()
    wait_until(lambda: hub.committed() == 5)
    second.stop()
    assert sorted(spooled(again.spool)) == sorted(
        orjson.dumps(orjson.loads(e)) for e in ENVELOPES[1:]
    )


class FullDisk(Spool):
    """A spool on a full disk: every append fails."""

    def append(self, lines: Sequence[bytes], sync: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_an_uncommitted_batch_is_delivered_again(
    hub: Hub,
    start: Callable[..., tuple[AzureEventhubsCollector, Intake]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub.send(*ENVELOPES)
    first, _ = start(FullDisk(tmp_path / "full"))
    first.error_pause = 0.1

    def failed_twice() -> bool:  # read, refused by the spool, rewound and read again
        return sum("spool cannot be written" in r.message for r in caplog.records) >= 2

    wait_until(failed_twice)
    first.stop()
    assert hub.committed() == 0
    second, intake = start()
    wait_until(lambda: hub.committed() == 3)
    second.stop()
    assert len(spooled(intake.spool)) == 3


def test_a_refused_connection_string_is_a_clear_error_at_start(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = "Tm90VGhlS2V5MDEyMzQ1Njc4OQ=="
    monkeypatch.setenv(ENV, f"Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey={key}")
    intake = Intake("azure_eventhubs", Spool(tmp_path / "s"))
    collector = AzureEventhubsCollector(settings_of(hub), intake, bootstrap_seconds=5)
    with pytest.raises(ConfigError, match="SASL PLAIN authentication failed") as refused:
        collector.start()
    assert key not in str(refused.value)
    assert not [r for r in caplog.records if key in r.getMessage()]  # never logged
    assert not collector.listening

    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match=f"environment variable {ENV} is not set"):
        AzureEventhubsCollector(settings_of(hub), intake).start()


def test_sasl_ssl_as_event_hubs_speaks_it(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same records through the SASL_SSL listener, its certificate checked against
    `ssl_cafile` (Event Hubs' endpoint is TLS only)."""
    if hub.kafka.ssl_bootstrap is None:
        pytest.skip("SECRETWATCH_KAFKA_SASL_SSL_BOOTSTRAP / _CAFILE unset (scripts/services env)")
    hub.send(*ENVELOPES)
    settings = settings_of(
        hub,
        bootstrap=hub.kafka.ssl_bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=hub.kafka.cafile,
    )
    collector = make_collector(settings, Intake(settings.label, Spool(tmp_path / "s")))
    assert isinstance(collector, AzureEventhubsCollector)
    collector.start()
    try:
        wait_until(lambda: hub.committed() == 3)
    finally:
        collector.stop()
    assert collector.intake.counts.records == 3


def test_the_example_config_makes_this_collector(tmp_path: Path) -> None:
    from pipeline.config import load_config

    root = Path(__file__).parents[2]
    (settings,) = load_config(root / "config" / "examples" / "serve-azure.yaml").collectors
    assert isinstance(settings, AzureEventhubs)
    assert settings.security_protocol == "SASL_SSL"
    collector = make_collector(settings, Intake(settings.label, Spool(tmp_path / "s")))
    assert isinstance(collector, AzureEventhubsCollector)
    assert not collector.listening  # not started: nothing is asked of Event Hubs
