"""`secretwatch run` members as real processes against the real Kafka and Elasticsearch
(`scripts/services start`): two members share a four-partition topic and survive a kill -9
without losing an event or raising an alert twice; an Elasticsearch outage holds the
pipeline back (no commit past an unstored event) until it returns; a malformed record goes
to the dead-letter topic and the stream goes on.

The outage is a TCP proxy between the member and Elasticsearch that refuses connections for
a while: `scripts/services` starts servers on fresh data, so restarting Elasticsearch would
lose what the test is checking.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from elasticsearch import Elasticsearch
from elasticsearch.exceptions import GeneralAvailabilityWarning
from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafkatools import (
    CuttableProxy,
    Offsets,
    Proc,
    StoreGate,
    TopicReader,
    drop,
    kafka_section,
    unique,
    wait_for,
    write_config,
)

from pipeline.bus.kafka import ensure_topics
from pipeline.config import load_config
from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.store.elasticsearch import ElasticsearchStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from raw_stream import Raw, expected_events, produce, raw_records, scenario  # noqa: E402


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Raw], dict[str, EventRow]]:
    """~25,000 raw records (Vault and CloudTrail, 40 days, 11 labelled attacks)."""
    folder = tmp_path_factory.mktemp("scenario")
    scenario(folder, days=40, scale=0.05)
    records = raw_records(folder)
    return records, expected_events(records)


@pytest.fixture
def offsets(kafka_bootstrap: str) -> Iterator[Offsets]:
    found = Offsets(kafka_bootstrap)
    yield found
    found.close()


@pytest.fixture
def made(kafka_bootstrap: str, es_url: str) -> Iterator[list[str]]:
    """Names of the topics and indices a test makes; dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        drop(kafka_bootstrap, name, es_url)


def setup(tmp: Path, bootstrap: str, es: str, label: str, made: list[str], **kafka: object):
    name = unique(label)
    made.append(name)
    section = kafka_section(
        bootstrap, name, tmp, session_timeout_ms=6000, snapshot_seconds=5, **kafka
    )
    store = {"type": "elasticsearch", "url": es, "index_prefix": name}
    config = write_config(tmp, section, store)
    kcfg = load_config(config).kafka
    assert kcfg is not None
    ensure_topics(kcfg)
    return name, config, kcfg


def member(tmp: Path, config: Path, name: str) -> Proc:
    return Proc(tmp, name, "run", "--config", str(config), "--member", name)


def stop(proc: Proc) -> int:
    """SIGTERM to a member once it is up, and its exit status. Its first line is printed
    after it handles SIGTERM; a member still starting (slowly on a loaded machine, while
    the others did all the work) would die of the signal (-15) instead of stopping."""
    wait_for(lambda: f"member {proc.name}:" in proc.log(), 120, f"member {proc.name} to start")
    return proc.stop()


def owned(proc: Proc) -> list[int] | None:
    """The detect partitions the member last said it owns."""
    found = re.findall(r"detect: owns partitions \[([\d, ]*)\]", proc.log())
    return [int(p) for p in found[-1].split(",") if p.strip()] if found else None


def reap(*procs: Proc | None) -> None:
    """Kill what a failed test left running (a passing test has stopped them already)."""
    for proc in procs:
        if proc is not None and proc.popen.poll() is None:
            proc.kill9()


def es_store(url: str, prefix: str) -> ElasticsearchStore:
    """The members' store, read-only, once a member has created it."""

    def opened() -> ElasticsearchStore | None:
        store = ElasticsearchStore(url, prefix, read_only=True)
        try:
            store.open()
        except StoreError:
            return None
        return store

    return wait_for(opened, 90, f"a member to create the store {prefix}", every=0.5)


def stored_count(store: ElasticsearchStore) -> int:
    try:
        return store.count()
    except Exception:  # noqa: BLE001 - the indices appear with the first write
        return 0


def writes_in_flight(es_url: str, prefix: str) -> int:
    """Bulk requests Elasticsearch is still working on for `prefix`'s indices: one sent just
    before an outage is finished by the server though its connection was dropped."""
    client = Elasticsearch(es_url)
    try:
        with warnings.catch_warnings():  # the task list is a "technical preview" API
            warnings.simplefilter("ignore", GeneralAvailabilityWarning)
            found = client.tasks.list(actions="indices:data/write/bulk*", detailed=True)
    finally:
        client.close()
    return sum(
        1
        for node in found["nodes"].values()
        for task in node["tasks"].values()
        if prefix in task.get("description", "")
    )


def retries(proc: Proc) -> int:
    """How many failed store steps the member has logged so far."""
    return len(re.findall(r"retrying in [\d.]+ s", proc.log()))


def caught_up(records: list[ConsumerRecord]) -> bool:
    """Do the last progress marks read say every raw partition is caught up?"""
    docs = (orjson.loads(r.value) for r in records)
    marks = [doc["marks"] for doc in docs if isinstance(doc, dict)]
    return bool(marks) and set(marks[-1].values()) == {None}


def alert_bodies(store: ElasticsearchStore) -> list[dict]:
    return [orjson.loads(b) for b in store.alerts()["body"]]


def assert_no_duplicate_alerts(alerts: list[dict]) -> None:
    """Ids unique, and no incident grown over another (no finding in two alerts): alerts
    about one identity follow each other in time. (They are the grouping gap apart unless
    the new owner, judging again, found findings between two incidents both raised before
    the kill: neither can be taken back, so the older one ends where the younger begins.)"""
    ids = [a["id"] for a in alerts]
    assert len(ids) == len(set(ids))
    by_identity: dict[str, list[dict]] = {}
    for a in alerts:
        by_identity.setdefault(a["identity"], []).append(a)
    for identity, mine in by_identity.items():
        mine.sort(key=lambda a: a["window_start"])
        for before, after in zip(mine, mine[1:], strict=False):
            gap = datetime.fromisoformat(after["window_start"]) - datetime.fromisoformat(
                before["window_end"]
            )
            assert gap >= timedelta(0), (identity, _told(before), _told(after))


def _told(alert: dict) -> tuple:
    """An alert as a failure message shows it: its window and each finding's."""
    findings = [(f["detector"], f["window_start"], f["window_end"]) for f in alert["findings"]]
    return alert["id"], alert["window_start"], alert["window_end"], findings


def test_two_members_share_the_work_and_survive_kill_9(
    tmp_path: Path, kafka_bootstrap: str, es_url: str, stream, offsets: Offsets, made
):
    """The stream is on the raw topics before the members start, and they take it in
    small polls. (Produced while they run, 40 days of events in a few seconds, the
    producer's batching alone would put one raw partition days of event time behind
    another: far more than `lateness_seconds`, so events would come late, be stored but
    not judged, and judged by the next owner after the kill.) Member a stores through a
    gate that passes its first two writes of events and holds the next, so the kill lands
    on work in progress by construction, not by racing a poll of the store against the
    members' pace (under load, a once stored the whole stream before the test saw a
    quarter). Held there, a does not poll: b's joining waits for the kill, as it would
    behind any member stuck on its store; a2 and b share the partitions afterwards."""
    records, expected = stream
    name, config, kcfg = setup(
        tmp_path, kafka_bootstrap, es_url, "crash", made, batch_max_records=500
    )
    gate = StoreGate(es_url, allow=2)
    gated = tmp_path / "gated.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["store"]["url"] = gate.url
    gated.write_text(yaml.safe_dump(settings))
    produce(kcfg, records)
    a, b = member(tmp_path, gated, "a"), member(tmp_path, config, "b")
    a2 = store = None
    try:
        store = es_store(es_url, name)
        wait_for(gate.holding.is_set, 180, "member a to hold a write of events at the gate")
        wait_for(lambda: owned(a), 60, "a to log the partitions it works on")
        a.kill9()
        at_kill = stored_count(store)
        assert at_kill < len(expected), "the kill came after the stream had been stored"
        gate.release()  # what a had sent arrives, as a request sent before a kill may
        time.sleep(3)
        a2 = member(tmp_path, config, "a2")
        wait_for(lambda: stored_count(store) == len(expected), 300, "every event stored")
        wait_for(
            lambda: sorted((owned(a2) or []) + (owned(b) or [])) == [0, 1, 2, 3],
            90,
            "the restarted member and the survivor to share the partitions",
        )
        # Detection is done once every event offset is committed by the detect group.
        wait_for(lambda: offsets.lag(f"{name}-detect", kcfg.events_topic) == 0, 120, "detect lag 0")
        assert stop(a2) == 0, a2.log()
        assert stop(b) == 0, b.log()
        stored = set(store.events()["event_id"])
        assert stored == set(expected)
        alerts = alert_bodies(store)
        assert len(alerts) >= 3  # detection ran (which alerts depends on the takeover timing)
        assert_no_duplicate_alerts(alerts)
    finally:
        reap(a, b, a2)
        gate.close()
        if store is not None:
            store.close()


@pytest.mark.parametrize("members", [1, 2])
def test_a_backlog_is_judged_whole_none_of_it_late(
    tmp_path: Path,
    kafka_bootstrap: str,
    es_url: str,
    stream,
    offsets: Offsets,
    made,
    members: int,
):
    """Raw records waiting on four partitions per source, one fetch of each spanning days of
    event time: each member hands events on in event-time order and tells how far it has
    got (progress marks), so none comes late to detection (late events are stored but not
    judged). The backlog is there before the members start: produced while they run, at
    this pace (40 days in a few seconds), the producer's batching alone would put one raw
    partition days behind another, much more than the lateness allowed."""
    records, expected = stream
    name, config, kcfg = setup(tmp_path, kafka_bootstrap, es_url, f"backlog{members}", made)
    procs: list[Proc] = []
    store = None
    try:
        produce(kcfg, records)
        procs = [member(tmp_path, config, f"m{i}") for i in range(members)]
        store = es_store(es_url, name)
        wait_for(lambda: stored_count(store) == len(expected), 300, "every event stored")
        detect = f"{name}-detect"
        wait_for(lambda: offsets.lag(detect, kcfg.events_topic) == 0, 120, "detect lag 0")
        late = 0
        for proc in procs:
            assert stop(proc) == 0, proc.log()
            text = " ".join(proc.log().split())
            reports = re.findall(r"([\d,]+) stored \(([\d,]+) came late", text)
            assert reports, text
            late += int(reports[-1][1].replace(",", ""))
        assert late == 0, [p.log() for p in procs]
        assert set(store.events()["event_id"]) == set(expected)
        assert len(alert_bodies(store)) >= 5
    finally:
        reap(*procs)
        if store is not None:
            store.close()


def test_store_outage_holds_commits_back_then_catches_up(
    tmp_path: Path, kafka_bootstrap: str, es_url: str, stream, offsets: Offsets, made
):
    records, expected = stream
    es = urlsplit(es_url)
    proxy = CuttableProxy(es.hostname or "127.0.0.1", es.port or 9200)
    name, config, kcfg = setup(
        tmp_path, kafka_bootstrap, f"http://127.0.0.1:{proxy.port}", "outage", made
    )
    one = member(tmp_path, config, "one")
    detect = f"{name}-detect"
    store = None
    try:
        store = es_store(es_url, name)  # the test itself reads Elasticsearch directly
        wait_for(lambda: owned(one), 90, "the member to own its partitions")
        half = len(records) // 2
        produce(kcfg, records[:half])
        wait_for(lambda: stored_count(store) > 1000, 120, "some events stored")
        proxy.cut()
        produce(kcfg, records[half:])
        wait_for(lambda: "unavailable" in one.log(), 60, "the member to notice the outage")
        wait_for(
            lambda: writes_in_flight(es_url, name) == 0,
            60,
            "Elasticsearch to finish the writes sent before the outage",
        )
        held = offsets.committed(detect, kcfg.events_topic)
        stored_then = stored_count(store)
        failed = retries(one)
        # Held back through three more failed tries (not a guessed time): nothing committed,
        # nothing stored, while the events topic grew.
        wait_for(lambda: retries(one) >= failed + 3, 120, "three more tries of the member")
        wait_for(
            lambda: sum(offsets.end(kcfg.events_topic).values()) > sum(held.values()),
            120,
            "the events topic to grow",
        )
        assert offsets.committed(detect, kcfg.events_topic) == held
        assert stored_count(store) == stored_then < len(expected)
        proxy.restore()
        wait_for(lambda: stored_count(store) == len(expected), 300, "every event stored")
        wait_for(lambda: offsets.lag(detect, kcfg.events_topic) == 0, 120, "detect lag 0")
        assert stop(one) == 0, one.log()
        assert set(store.events()["event_id"]) == set(expected)
        log = one.log()
        assert f"store http://127.0.0.1:{proxy.port} unavailable" in log, log
        # Backing off from the first failure on: 0.5 s, then doubling (storing events and
        # judging retry in loops of their own, so their waits may interleave).
        waits = [float(w) for w in re.findall(r"retrying in ([\d.]+) s", log)]
        assert waits[0] == 0.5 and 1.0 in waits and max(waits) <= 30, log
        assert_no_duplicate_alerts(alert_bodies(store))
    finally:
        reap(one)
        proxy.close()
        if store is not None:
            store.close()


def test_malformed_record_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    tmp_path: Path, kafka_bootstrap: str, es_url: str, stream, made
):
    records, _ = stream
    name, config, kcfg = setup(tmp_path, kafka_bootstrap, es_url, "dead", made, partitions=1)
    one = member(tmp_path, config, "one")
    store = None
    try:
        store = es_store(es_url, name)
        wait_for(lambda: owned(one), 90, "the member to own its partition")
        first = [r for r in records[:400] if r.source == "vault"]
        bad = Raw("vault", b"broken", b'{"type":"request","auth":{"client_token":"s.SECRET', 0)
        produce(kcfg, [*first[:200], bad, *first[200:]])
        events = expected_events(first)
        wait_for(lambda: stored_count(store) == len(events), 120, "the good events stored")
        # Each record is a JSON array of events of the identity it is keyed by, or the
        # normalize stage's progress marks for its raw partition (the events are all out).
        # One partition: the marks saying all is out come after every batch.
        reader = TopicReader(kafka_bootstrap, kcfg.events_topic)
        batches = reader.read_until(caught_up, "marks saying every raw partition caught up")
        reader.close()
        docs = [(r.key, orjson.loads(r.value)) for r in batches]
        carried = [(key, doc) for key, doc in docs if isinstance(doc, list)]
        marks = [doc["marks"] for _, doc in docs if isinstance(doc, dict)]
        assert marks and f"{name}.raw.vault/0" in marks[-1]
        assert set(marks[-1].values()) == {None}  # every raw partition caught up
        assert sorted(e["event_id"] for _, batch in carried for e in batch) == sorted(events)
        assert all({e["identity"].encode() for e in batch} == {key} for key, batch in carried)
        # A record on the events topic that is not an event batch is a dead letter too.
        with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
            producer.send(kcfg.events_topic, b'[{"event_id": 7}]', b"someone").get(30)
        reader = TopicReader(kafka_bootstrap, kcfg.dead_letter_topic)
        letters = reader.read(2, timeout=60, settle=1.0)
        reader.close()
        by_topic = {d["topic"]: d for d in (orjson.loads(x.value) for x in letters)}
        doc, foreign = by_topic[f"{name}.raw.vault"], by_topic[kcfg.events_topic]
        assert doc["partition"] == 0 and doc["offset"] == 200 and doc["member"] == "one"
        assert "JSON" in doc["reason"]
        assert "SECRET" not in doc["raw"]  # redacted
        assert "not an event" in foreign["reason"]
        assert set(store.events()["event_id"]) == set(events)
        assert stop(one) == 0, one.log()
    finally:
        reap(one)
        if store is not None:
            store.close()
