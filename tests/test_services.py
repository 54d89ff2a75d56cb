"""The servers that scripts/services runs answer, and do what the pipeline needs of them."""

from __future__ import annotations

import time
import uuid

import elasticsearch
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic


def test_elasticsearch_answers(es_url: str) -> None:
    es = Elasticsearch(es_url, request_timeout=60)  # bounds, generous under load
    try:
        health = es.cluster.health(wait_for_status="yellow", timeout="30s")
        assert health["status"] in ("green", "yellow")
        assert health["number_of_nodes"] == 1
        nodes = es.nodes.info(node_id="_local")
        (node,) = nodes["nodes"].values()
        major = int(node["version"].split(".")[0])
        assert major == 8  # Maven Central publishes the integ-test zip up to 8.19
        assert major == int(elasticsearch.__versionstr__.split(".")[0])
    finally:
        es.close()


def test_kafka_topic_produce_consume(kafka_bootstrap: str) -> None:
    topic = f"secretwatch.test-services.{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=60_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        try:
            sent = producer.send(topic, key=b"k", value=b"hello", partition=2).get(timeout=60)
        finally:
            producer.close()
        assert sent.partition == 2

        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        try:
            assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
            tp = TopicPartition(topic, 2)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            got = []
            deadline = time.monotonic() + 60
            while not got and time.monotonic() < deadline:
                got = [r for rs in consumer.poll(timeout_ms=500).values() for r in rs]
        finally:
            consumer.close()
        assert [(r.key, r.value, r.offset) for r in got] == [(b"k", b"hello", 0)]
    finally:
        admin.delete_topics([topic])
        admin.close()
