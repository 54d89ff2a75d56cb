"""Elasticsearch-specific store behaviour: explicit ECS mappings, monthly indices, bulk
retries, crash-safe write order, credentials. The shared contract is in
test_store_contract.py; these run against the same real server (tests/store/conftest.py)."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from conftest import ES_URL, drop_indices, es_prefix
from elasticsearch import BadRequestError, Elasticsearch
from test_store_contract import NOW, _alert, _baseline, _utc, make_row

from pipeline.config import Config, ElasticsearchStoreConfig
from pipeline.errors import StoreError
from pipeline.record import PROVISIONAL_NOTE
from pipeline.sources.base import DeadLetter
from pipeline.store import STORES, open_store
from pipeline.store.base import Checkpoint, DeliveryOutcome, EventFilter
from pipeline.store.elasticsearch import EVENT_FIELDS, KINDS, SCHEMA_VERSION, ElasticsearchStore
from pipeline.store.elasticsearch import store as store_module

# Answers a request instead of Elasticsearch: (method, path, body) -> (status, body), or
# DROP to close the connection without an answer, or None to relay the request.
Rule = Callable[[str, str, bytes], tuple[int, bytes] | None]
DROP = (0, b"")


class Proxy:
    """A real HTTP proxy on 127.0.0.1 in front of the test server, answering some requests
    itself (the `rule`) and relaying the rest."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.requests: list[tuple[str, str]] = []
        target = urlsplit(ES_URL)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append((self.command, self.path))
                answer = proxy.rule(self.command, self.path, body)
                if answer == DROP:
                    self.close_connection = True
                    return
                if answer is not None:
                    status, payload = answer
                    headers = [
                        ("Content-Type", "application/json"),
                        ("X-elastic-product", "Elasticsearch"),
                    ]
                else:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    try:
                        skip = {"host", "content-length"}
                        conn.request(
                            self.command,
                            self.path,
                            body,
                            {k: v for k, v in self.headers.items() if k.lower() not in skip},
                        )
                        response = conn.getresponse()
                        status, payload = response.status, response.read()
                        drop = {"content-length", "transfer-encoding", "connection"}
                        headers = [
                            (k, v) for k, v in response.getheaders() if k.lower() not in drop
                        ]
                    finally:
                        conn.close()
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bulk_calls(self) -> int:
        return sum(1 for _, path in self.requests if path.split("?")[0].endswith("/_bulk"))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prefix(es_admin: Elasticsearch, tmp_path: Path) -> Iterator[str]:
    name = es_prefix(tmp_path)
    drop_indices(es_admin, name)
    yield name
    drop_indices(es_admin, name)


@pytest.fixture
def es(prefix: str) -> Iterator[ElasticsearchStore]:
    with ElasticsearchStore(ES_URL, prefix, backoff=0.01) as store:
        yield store


@pytest.fixture
def proxies() -> Iterator[Callable[[Rule], Proxy]]:
    started: list[Proxy] = []

    def start(rule: Rule) -> Proxy:
        started.append(Proxy(rule))
        return started[-1]

    yield start
    for proxy in started:
        proxy.close()


def _is_bulk(path: str) -> bool:
    return path.split("?")[0].endswith("/_bulk")


def _reject_first_bulks(count: int, status: int = 429) -> Rule:
    """Answer the first `count` bulk requests with `status`, as an overloaded cluster."""
    left = [count]
    error = orjson.dumps(
        {
            "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"},
            "status": status,
        }
    )

    def rule(method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        if _is_bulk(path) and left[0] > 0:
            left[0] -= 1
            return status, error
        return None

    return rule


def _reject_bulk_items(count: int) -> Rule:
    """Answer the first `count` bulk requests with HTTP 200 and every item rejected (429),
    as Elasticsearch does when its write queue is full."""
    left = [count]

    def rule(method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        if not _is_bulk(path) or left[0] <= 0:
            return None
        left[0] -= 1
        lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        items = []
        for line in lines:
            op, meta = next(iter(line.items()))
            if op in ("create", "index", "update", "delete"):
                items.append(
                    {
                        op: {
                            "_index": meta["_index"],
                            "_id": meta["_id"],
                            "status": 429,
                            "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "queue full",
                            },
                        }
                    }
                )
        return 200, orjson.dumps({"errors": True, "took": 1, "items": items})

    return rule


# -- layout and mappings -------------------------------------------------------------------


def test_registered() -> None:
    assert STORES["elasticsearch"] is ElasticsearchStore


def _field(properties: dict, dotted: str) -> dict:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        properties = properties[parent]["properties"]
    return properties[leaf]


def test_mappings_are_explicit_strict_and_ecs(
    es: ElasticsearchStore, es_admin: Elasticsearch
) -> None:
    assert es.schema_version() == SCHEMA_VERSION
    template = es_admin.indices.get_index_template(name=f"{es.prefix}-events")
    body = template["index_templates"][0]["index_template"]
    assert body["index_patterns"] == [f"{es.prefix}-events-*"]
    mappings = body["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    props = mappings["properties"]
    assert _field(props, "@timestamp")["type"] == "date_nanos"  # microseconds survive
    assert _field(props, "source.ip")["type"] == "ip"
    for column, dotted in EVENT_FIELDS.items():
        assert _field(props, dotted)["type"], column
    for dotted in (
        "event.id",
        "event.action",
        "event.outcome",
        "user.name",
        "user_agent.original",
        "http.request.id",
        "error.message",
    ):
        assert dotted in EVENT_FIELDS.values()


def test_every_index_has_a_strict_mapping(es: ElasticsearchStore, es_admin: Elasticsearch) -> None:
    """Indices are created when first written; once all are, each has its own mapping."""
    alert = _alert("root")
    es.write_batch(
        [make_row("e1")],
        [DeadLetter("f", 1, 0, "bad", b"x", "vault", None)],
        [Checkpoint("k", "/p", 1, 2**64 - 1, 3, 4)],
    )
    es.save_detection([_baseline("root", 1)], {"meta": b"m"}, [alert], version=1)
    es.record_delivery("hook", [DeliveryOutcome(alert["id"], 1, "delivered")], NOW)
    es.decide_fold(alert["id"], None, NOW)
    for kind, types in KINDS.items():
        index = es.index(kind)
        mappings = es_admin.indices.get_mapping(index=index)[index]["mappings"]
        assert mappings["dynamic"] == "strict", kind
        for dotted in types:
            assert _field(mappings["properties"], dotted), (kind, dotted)
    assert es.checkpoint("k") == Checkpoint("k", "/p", 1, 2**64 - 1, 3, 4)  # > a long


def test_unknown_fields_are_refused(es: ElasticsearchStore, es_admin: Elasticsearch) -> None:
    es.write_batch([make_row("e1")])
    with pytest.raises(BadRequestError, match="strict_dynamic_mapping"):
        es_admin.index(index=f"{es.prefix}-events-2026.05", document={"guessed": 1})


def test_events_go_to_the_index_of_their_month(
    es: ElasticsearchStore, es_admin: Elasticsearch
) -> None:
    rows = [
        make_row("apr", "2026-04-30T23:59:59.999999Z"),
        make_row("may1", "2026-05-01T00:00:00Z"),
        make_row("may2", "2026-05-31T12:00:00Z"),
        make_row("jun", "2026-06-15T08:00:00.123456Z"),
    ]
    assert es.write_batch(rows) == 4
    counts = {
        name: es_admin.count(index=name)["count"]
        for name in es_admin.indices.get(index=f"{es.prefix}-events-*")
    }
    assert counts == {
        f"{es.prefix}-events-2026.04": 1,
        f"{es.prefix}-events-2026.05": 2,
        f"{es.prefix}-events-2026.06": 1,
    }
    assert list(es.events()["event_id"]) == ["apr", "may1", "may2", "jun"]
    jun = es.events(EventFilter(since=_utc("2026-06-15T08:00:00.123456Z")))
    assert list(jun["event_id"]) == ["jun"]  # µs-exact range, across indices
    assert jun["ts"][0] == _utc("2026-06-15T08:00:00.123456Z")
    stats = es.stats("identity").iloc[0]
    assert (stats["events"], stats["first_seen"], stats["last_seen"]) == (
        4,
        _utc("2026-04-30T23:59:59.999999Z"),
        _utc("2026-06-15T08:00:00.123456Z"),
    )


def test_complete_record_replaces_provisional_across_a_month_edge(
    es: ElasticsearchStore, es_admin: Elasticsearch
) -> None:
    lone = make_row("r1", "2026-04-30T23:59:59.900000Z", note=PROVISIONAL_NOTE)
    assert es.write_batch([lone]) == 1
    complete = make_row("r1", "2026-05-01T00:00:00.100000Z", outcome="denied")
    assert es.write_batch([complete]) == 1
    frame = es.events()
    assert list(frame["event_id"]) == ["r1"] and frame["outcome"][0] == "denied"
    assert es_admin.count(index=f"{es.prefix}-events-2026.04")["count"] == 0
    # Neither the provisional record nor the complete one adds a second copy now.
    assert es.write_batch([lone]) == 0
    assert es.write_batch([complete]) == 0
    assert es.count() == 1


def test_provisional_record_never_replaces_complete_across_a_month_edge(
    es: ElasticsearchStore,
) -> None:
    complete = make_row("r2", "2026-05-01T00:00:00.100000Z")
    assert es.write_batch([complete]) == 1
    late = make_row("r2", "2026-04-30T23:59:59.900000Z", note=PROVISIONAL_NOTE, outcome="denied")
    assert es.write_batch([late]) == 0
    assert list(es.events()["outcome"]) == ["success"]


def test_question_mark_is_literal_in_wildcards(es: ElasticsearchStore) -> None:
    es.write_batch([make_row("q", identity="a?b"), make_row("x", identity="axb")])
    assert list(es.events(EventFilter(identity="a?*"))["event_id"]) == ["q"]
    assert es.count(EventFilter(identity="a\\*")) == 0


def test_replayed_large_batch_adds_nothing_and_reads_back_in_pages(prefix: str) -> None:
    rows = [
        make_row(
            f"e{i:06d}",
            f"2026-05-01T03:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}000Z",
            identity=f"svc-{i % 7}",
        )
        for i in range(23_456)
    ]
    with ElasticsearchStore(ES_URL, prefix, bulk_size=2000, backoff=0.01) as store:
        assert store.write_batch(rows) == len(rows)
        assert store.write_batch(rows) == 0  # a replay after a crash: all 409, none new
        assert store.write_batch(rows[:100] + [make_row("new", "2026-05-02T00:00:00Z")]) == 1
        assert store.count() == len(rows) + 1
        frame = store.events()  # more than one page: search_after over a point in time
        assert len(frame) == len(rows) + 1
        assert frame["event_id"].is_unique and frame["ts"].is_monotonic_increasing
        newest = store.events(newest_first=True)  # sliced reads, sorted after
        assert list(newest["event_id"]) == list(reversed(frame["event_id"]))
        top = store.events(limit=12_000, newest_first=True)  # one stream, sorted by the server
        assert list(top["event_id"]) == list(newest["event_id"][:12_000])
        svc3 = store.events(EventFilter(identity="svc-3", since=frame["ts"][500]))
        assert set(svc3["identity"]) == {"svc-3"} and svc3["ts"].min() >= frame["ts"][500]
        assert str(frame["ts"].dtype) == "datetime64[us, UTC]"


def test_writes_under_load_are_refreshed_at_most_once_a_second_yet_every_read_sees_them(
    prefix: str,
    proxies,  # noqa: ANN001
) -> None:
    """Big batches in a row skip the refresh (it costs a tenth of the write rate); any
    store's read refreshes first, so another process (a member taking over from one
    killed between refreshes) still sees every event. The store's clock is the test's,
    and starts at 0 as a monotonic clock does on a machine just booted: the first batch
    must refresh all the same (it did not while "never" was kept as 0.0)."""
    now = [0.0]
    proxy = proxies(lambda method, path, body: None)  # relays everything, records it

    def refreshes() -> int:
        return sum(1 for _, path in proxy.requests if "_refresh" in path)

    size = store_module.REFRESH_BATCH  # the smallest batch that waits for its refresh
    rows = [
        make_row(
            f"r{i:05d}", f"2026-05-01T04:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}00000Z"
        )
        for i in range(4 * size)
    ]
    batches = [rows[part * size : (part + 1) * size] for part in range(4)]
    with ElasticsearchStore(proxy.url, prefix, clock=lambda: now[0]) as writer:
        for batch, at in zip(batches, (0.0, 0.5, 0.999), strict=False):  # within a second
            now[0] = at
            writer.write_batch(batch)
        assert refreshes() == 1  # the first batch refreshes, the next two wait
        with ElasticsearchStore(ES_URL, prefix, read_only=True) as reader:
            assert reader.count() == 3 * size
            since = EventFilter(since=_utc("2026-05-01T04:00:00Z"))
            assert len(reader.events(since)) == 3 * size
        now[0] = 0.0 + store_module.REFRESH_SECONDS  # a second after the first refresh
        writer.write_batch(batches[3])
        assert refreshes() == 2 and "_refresh" in proxy.requests[-1][1]
        writer.write_batch([make_row("quiet", "2026-05-01T05:00:00Z")])  # small: at once
        assert refreshes() == 3 and "_refresh" in proxy.requests[-1][1]


# -- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_rule", [_reject_first_bulks, _reject_bulk_items], ids=["request-429", "item-429"]
)
def test_bulk_is_retried_on_429(prefix: str, proxies, make_rule) -> None:  # noqa: ANN001
    proxy = proxies(make_rule(2))
    with ElasticsearchStore(proxy.url, prefix, backoff=0.01, max_retries=3) as store:
        assert store.write_batch([make_row("a"), make_row("b"), make_row("c")]) == 3
        assert store.count() == 3
    assert proxy.bulk_calls() == 3  # two rejected, the third stored


@pytest.mark.parametrize(
    "make_rule", [_reject_first_bulks, _reject_bulk_items], ids=["request-429", "item-429"]
)
def test_bulk_retries_are_bounded(prefix: str, proxies, make_rule) -> None:  # noqa: ANN001
    proxy = proxies(make_rule(10_000))
    with ElasticsearchStore(proxy.url, prefix, backoff=0.01, max_retries=2) as store:
        with pytest.raises(StoreError, match="429") as info:
            store.write_batch([make_row("a")])
        assert "overloaded" in str(info.value)
        assert store.count() == 0
    # the client's retries (per request) times the bulk helper's (per item): bounded in
    # count, so in time (each pause is backoff * 2**n); no wall-clock bound to trip
    assert 3 <= proxy.bulk_calls() <= 3 * 3


def test_bulk_is_sent_again_after_a_dropped_connection(prefix: str, proxies) -> None:  # noqa: ANN001
    """The client retries a dropped request at once (max_retries); the store sends the
    bulk again after a pause when that is not enough."""
    left = [3]

    def drop_three(method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        if _is_bulk(path) and left[0] > 0:
            left[0] -= 1
            return DROP
        return None

    proxy = proxies(drop_three)
    with ElasticsearchStore(proxy.url, prefix, backoff=0.01, max_retries=1) as store:
        assert store.write_batch([make_row("a"), make_row("b")]) == 2
        assert store.count() == 2
    assert proxy.bulk_calls() == 4  # 2 tries of the client, twice


def test_state_is_written_last(prefix: str, proxies) -> None:  # noqa: ANN001
    """A failure (or crash) while writing the state leaves alerts and baselines stored and
    the old watermark in place: the restarted detector redoes that stretch."""

    def refuse_state(method: str, path: str, body: bytes) -> tuple[int, bytes] | None:
        if _is_bulk(path) and b"detection-state" in body:
            return 500, b'{"error":{"type":"boom","reason":"disk on fire"},"status":500}'
        return None

    with ElasticsearchStore(ES_URL, prefix) as store:
        store.save_detection([], {"meta": b"old"}, [], version=1)
    proxy = proxies(refuse_state)
    with ElasticsearchStore(proxy.url, prefix, backoff=0.01, max_retries=0) as store:
        with pytest.raises(StoreError, match="disk on fire"):
            store.save_detection([_baseline("alice", 1)], {"meta": b"new"}, [_alert("root")], 2)
        assert store.detection_state("meta") == b"old"
        assert store.baselines() == [_baseline("alice", 1)]
        assert list(store.alerts()["identity"]) == ["root"]


# -- opening and credentials ---------------------------------------------------------------


def test_read_only_missing_store_is_explained(prefix: str, es_admin: Elasticsearch) -> None:
    with pytest.raises(StoreError) as info:
        ElasticsearchStore(ES_URL, prefix, read_only=True).open()
    message = str(info.value)
    assert "does not exist yet" in message and prefix in message and ES_URL in message
    assert not es_admin.indices.get(index=f"{prefix}-*")  # a reader creates nothing


def test_newer_schema_is_refused(es: ElasticsearchStore, es_admin: Elasticsearch) -> None:
    es_admin.index(
        index=es.index("meta"), id="schema_version", document={"value": "99"}, refresh=True
    )
    for read_only in (False, True):
        with pytest.raises(StoreError, match="upgrade secretwatch") as info:
            ElasticsearchStore(ES_URL, es.prefix, read_only=read_only).open()
        assert "99" in str(info.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_names_url_and_fix_not_secrets() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    store = ElasticsearchStore(
        url,
        "x",
        username="elastic",
        password="hunter2-secret",  # noqa: S106
        max_retries=0,
    )
    with pytest.raises(StoreError) as info:
        store.open()
    message = str(info.value)
    assert url in message and "store.url" in message
    assert "hunter2" not in message and "hunter2" not in repr(store)
    with pytest.raises(StoreError, match="not open"):
        store.count()


def test_rejected_credentials_are_explained(proxies) -> None:  # noqa: ANN001
    body = orjson.dumps(
        {
            "error": {
                "type": "security_exception",
                "reason": "unable to authenticate user [elastic]",
            },
            "status": 401,
        }
    )
    proxy = proxies(lambda method, path, _: (401, body))
    store = ElasticsearchStore(proxy.url, "x", api_key="c2VjcmV0LWFwaS1rZXk=", max_retries=0)
    with pytest.raises(StoreError) as info:
        store.open()
    message = str(info.value)
    assert "refused the credentials" in message and proxy.url in message
    assert "api_key_env" in message
    assert "c2VjcmV0" not in message and "c2VjcmV0" not in repr(store)


def _config(**fields: object) -> ElasticsearchStoreConfig:
    return ElasticsearchStoreConfig.model_validate({"type": "elasticsearch", **fields})


def test_basic_auth_from_the_environment() -> None:
    cfg = _config(
        username="ingest",
        password_env="SW_ES_PASSWORD",  # noqa: S106
        verify_certs=False,
        ca_certs="/etc/ca.pem",
        request_timeout=5,
        max_retries=1,
        bulk_size=7,
    )
    store = ElasticsearchStore.from_config(cfg, environ={"SW_ES_PASSWORD": "p4ss-w0rd"})
    options = store.cluster.options
    assert options["basic_auth"] == ("ingest", "p4ss-w0rd")
    assert "api_key" not in options
    assert (options["verify_certs"], options["ca_certs"], options["request_timeout"]) == (
        False,
        "/etc/ca.pem",
        5,
    )
    assert (options["max_retries"], store.cluster.bulk_size) == (1, 7)
    assert "p4ss" not in repr(store) and "ingest" in repr(store)


def test_api_key_from_the_environment() -> None:
    store = ElasticsearchStore.from_config(
        _config(api_key_env="SW_ES_KEY"), read_only=True, environ={"SW_ES_KEY": "a2V5OnZhbA=="}
    )
    assert store.cluster.options["api_key"] == "a2V5OnZhbA=="
    assert "basic_auth" not in store.cluster.options
    assert "a2V5" not in repr(store) and "read-only" in repr(store)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"api_key_env": "SW_MISSING"}, "SW_MISSING"),
        ({"username": "u", "password_env": "SW_MISSING"}, "SW_MISSING"),
        ({"username": "u"}, "password_env"),
        ({"password_env": "SW_PW"}, "username"),
        ({"username": "u", "password_env": "SW_PW", "api_key_env": "SW_KEY"}, "not both"),
    ],
)
def test_incomplete_credentials_are_explained(fields: dict, match: str) -> None:
    with pytest.raises(StoreError, match=match) as info:
        ElasticsearchStore.from_config(
            _config(**fields), environ={"SW_PW": "pw-value", "SW_KEY": "key-value"}
        )
    assert "pw-value" not in str(info.value) and "key-value" not in str(info.value)


def test_open_store_takes_a_url_override(prefix: str) -> None:
    config = Config.model_validate(
        {"store": {"type": "elasticsearch", "url": "http://127.0.0.1:1", "index_prefix": prefix}}
    )
    store = open_store(config, Path(ES_URL), read_only=False)  # --store URL; Path eats a /
    try:
        assert isinstance(store, ElasticsearchStore)
        assert (store.url, store.prefix) == (ES_URL, prefix)
        assert store.write_batch([make_row("via-cli")]) == 1
    finally:
        store.close()
    with pytest.raises(StoreError, match="URL"):
        open_store(config, Path("data/other.duckdb"), read_only=True)
