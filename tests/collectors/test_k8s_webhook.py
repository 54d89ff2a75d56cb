"""The Kubernetes audit webhook collector against real HTTP senders (httpx over 127.0.0.1):
what it spools is stored exactly as the sample files are, it answers only once durable,
and whatever a sender does wrong costs that request only."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from http_senders import FIXTURES, Running, client, ingest, running
from waiting import wait_until

from pipeline.collectors import k8s_webhook
from pipeline.collectors.settings import K8sWebhook
from pipeline.config import load_config
from pipeline.sources.base import REPEATED_NOTE

K8S = FIXTURES / "k8s_audit"
GENERATED = [
    K8S / "secretwatch__generated" / "service_account_access.jsonl",
    K8S / "secretwatch__generated" / "request_response_secret_create.json",
]
FALCO_SECRETS = [
    K8S / "falcosecurity__falco" / f"{name}.json"
    for name in (
        "create_secret",
        "delete_secret",
        "create_kube_system_secret",
        "create_service_account_token_secret",
    )
]
TOKEN = "k8s-webhook-test-token-0123456789"  # noqa: S105 - a test token


def events_of(paths: list[Path]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in paths:
        out += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return out


def event_list(items: list[dict[str, object]]) -> bytes:
    return orjson.dumps(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
    )


def settings(max_body_bytes: int = 1 << 20, body_seconds: float = 30.0) -> K8sWebhook:
    return K8sWebhook(
        type="k8s_webhook",
        name="k8s-prod",
        listen="http://127.0.0.1:0/k8s-audit",
        token_env="K8S_WEBHOOK_TOKEN",  # noqa: S106 - the name of a variable
        max_body_bytes=max_body_bytes,
        body_seconds=body_seconds,
    )


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_WEBHOOK_TOKEN", TOKEN)


@pytest.fixture
def hook(tmp_path: Path) -> Running:
    with running(k8s_webhook.make, settings(), tmp_path) as r:
        yield r  # type: ignore[misc]


def post(url: str, body: bytes, token: str | None = TOKEN, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return client().post(url, content=body, headers=headers, timeout=30)


def test_event_list_batches_are_stored_as_the_sample_files_are(
    hook: Running, tmp_path: Path
) -> None:
    events = events_of(GENERATED)
    for start in range(0, len(events), 4):
        answer = post(hook.url, event_list(events[start : start + 4]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == len(events[start : start + 4])
    assert len(hook.spooled()) == len(events)  # one line per event
    assert hook.intake.counts.records == len(events)
    via_hook = ingest([hook.spool.path], "k8s", tmp_path / "hook.duckdb")
    direct = ingest(GENERATED, "k8s", tmp_path / "direct.duckdb")
    assert via_hook.summary.stored == direct.summary.stored > 0
    assert via_hook.events.equals(direct.events)
    assert len(via_hook.dead) == len(direct.dead) == 0


def test_blocking_mode_single_events_gzipped(hook: Running, tmp_path: Path) -> None:
    for path in FALCO_SECRETS:
        answer = post(hook.url, gzip.compress(path.read_bytes()), **{"content-encoding": "gzip"})
        assert answer.status_code == 200, answer.text
    via_hook = ingest([hook.spool.path], "k8s", tmp_path / "hook.duckdb")
    direct = ingest(FALCO_SECRETS, "k8s", tmp_path / "direct.duckdb")
    assert via_hook.summary.stored == direct.summary.stored == len(FALCO_SECRETS)
    assert via_hook.events.equals(direct.events)


def test_secret_values_in_request_bodies_never_reach_the_spool(hook: Running) -> None:
    path = K8S / "secretwatch__generated" / "request_response_secret_create.json"
    event = orjson.loads(path.read_bytes())
    data = event["requestObject"]["data"]
    assert data and all(isinstance(v, str) for v in data.values())
    assert post(hook.url, event_list([event])).status_code == 200
    spooled = b"".join(hook.spooled())
    assert spooled.count(b"auditID") == 1
    for value in data.values():
        assert value.encode() not in spooled
    assert b"requestObject" not in spooled and b"responseObject" not in spooled


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_without_the_token_401_and_nothing_spooled(
    hook: Running, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    answer = post(hook.url, event_list(events_of(GENERATED)), token=None, **headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert hook.spooled() == []
    assert hook.intake.counts.unauthorized == 1
    assert hook.intake.take_dead() == []  # an unknown sender cannot fill the dead letters


def test_other_paths_404_other_methods_405(hook: Running) -> None:
    base = hook.url.removesuffix("/k8s-audit")
    assert post(f"{base}/other", event_list([])).status_code == 404
    assert client().get(hook.url, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 405
    assert client().put(hook.url, content=b"{}").status_code == 405
    assert hook.spooled() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not json", "not JSON"),
        (b'{"kind": "Status", "apiVersion": "v1"}', "not an audit.k8s.io EventList or Event"),
        (b'{"kind": "EventList", "items": {"a": 1}}', "items is not a list"),
        (b"", "not JSON"),
    ],
)
def test_malformed_body_400_and_a_dead_letter_naming_the_collector(
    hook: Running, body: bytes, reason: str
) -> None:
    answer = post(hook.url, body)
    assert answer.status_code == 400
    assert reason in answer.json()["error"]
    [letter] = hook.intake.take_dead()
    assert letter.file.startswith("collector k8s-prod: POST /k8s-audit from 127.0.0.1:")
    assert reason in letter.reason
    assert hook.spooled() == []
    # and it goes on serving
    assert post(hook.url, event_list(events_of(GENERATED)[:2])).status_code == 200
    assert len(hook.spooled()) == 2


def test_a_bad_item_costs_itself_only(hook: Running) -> None:
    good = events_of(GENERATED)[:3]
    answer = post(hook.url, event_list([good[0], ["not", "an", "event"], good[1], good[2]]))
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 3, "rejected": 1}
    [letter] = hook.intake.take_dead()
    assert letter.file.endswith(", items[1]")
    assert letter.reason == "not an audit Event object"
    assert [orjson.loads(line)["auditID"] for line in hook.spooled()] == [
        e["auditID"] for e in good
    ]


def test_oversized_body_413_with_the_reason(tmp_path: Path) -> None:
    with running(k8s_webhook.make, settings(max_body_bytes=64 << 10), tmp_path) as hook:
        items = events_of(GENERATED) * 60
        body = event_list(items)
        assert len(body) > 64 << 10
        answer = post(hook.url, body)
        assert answer.status_code == 413
        assert "max_body_bytes" in answer.json()["error"]

        def chunks() -> list[bytes]:  # no Content-Length: refused while streaming
            return [body[i : i + 8192] for i in range(0, len(body), 8192)]

        streamed = client().post(
            hook.url, content=iter(chunks()), headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert streamed.status_code == 413
        assert hook.spooled() == []
        dead = hook.intake.take_dead()
        assert len(dead) == 2 and all("413" in d.reason for d in dead)
        assert post(hook.url, event_list(items[:5])).status_code == 200


def test_a_slow_sender_is_cut_off_with_408(tmp_path: Path) -> None:
    with running(k8s_webhook.make, settings(body_seconds=0.5), tmp_path) as hook:
        head = (
            f"POST /k8s-audit HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", hook.collector.port), timeout=120) as sock:
            sock.sendall(head + b'{"kind": "EventList", "items": [')  # and then nothing
            answer = b""
            while b"\r\n\r\n" not in answer:  # bounded by the socket's timeout
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        took = time.monotonic() - began
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert 0.4 < took < 60  # cut near body_seconds, not left to the client's timeout
        [letter] = hook.intake.take_dead()
        assert "408" in letter.reason and "body_seconds" in letter.reason
        assert post(hook.url, event_list(events_of(GENERATED)[:1])).status_code == 200


def test_gzip_bomb_413_in_bounded_memory(tmp_path: Path) -> None:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    spaces = b" " * (1 << 20)
    bomb = b"".join(squeeze.compress(spaces) for _ in range(64)) + squeeze.flush()
    assert len(bomb) < 1 << 20  # 64 MiB inflated
    with running(k8s_webhook.make, settings(max_body_bytes=1 << 20), tmp_path) as hook:
        tracemalloc.start()
        try:
            answer = post(hook.url, bomb, **{"content-encoding": "gzip"})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert answer.status_code == 413
        assert "inflates past" in answer.json()["error"]
        assert peak < 16 << 20, f"peak {peak:,} bytes"
        assert hook.spooled() == []
        cut = gzip.compress(event_list(events_of(GENERATED)))[:-12]
        broken = post(hook.url, cut, **{"content-encoding": "gzip"})
        assert broken.status_code == 400 and "gzip" in broken.json()["error"]


def test_concurrent_senders_all_spooled_exactly_once(hook: Running, tmp_path: Path) -> None:
    template = events_of(GENERATED)[0]
    senders, batches, per_batch = 12, 5, 40

    def send(sender: int) -> list[int]:
        codes = []
        for b in range(batches):
            items = [
                {**template, "auditID": f"{sender:04d}-{b:04d}-{i:04d}"} for i in range(per_batch)
            ]
            codes.append(post(hook.url, event_list(items)).status_code)
        return codes

    with ThreadPoolExecutor(senders) as pool:
        codes = [c for result in pool.map(send, range(senders)) for c in result]
    assert codes == [200] * senders * batches
    ids = [orjson.loads(line)["auditID"] for line in hook.spooled()]
    assert len(ids) == len(set(ids)) == senders * batches * per_batch
    stored = ingest([hook.spool.path], "k8s", tmp_path / "s.duckdb")
    assert stored.summary.stored == senders * batches * per_batch


def test_the_documented_kubeconfig_points_at_the_example_collector() -> None:
    root = FIXTURES.parents[1]
    config = load_config(root / "config" / "examples" / "serve-k8s.yaml")
    [collector] = config.collectors
    assert isinstance(collector, K8sWebhook) and collector.has_token
    text = (root / "docs" / "k8s-audit-webhook.kubeconfig").read_text()
    kubeconfig = yaml.safe_load(text)
    assert kubeconfig["kind"] == "Config"
    [cluster] = kubeconfig["clusters"]
    assert cluster["cluster"]["server"] == collector.listen
    [user] = kubeconfig["users"]
    assert "token" in user["user"]
    for flag in ("--audit-webhook-mode=batch", "--audit-webhook-batch-max-size=400"):
        assert flag in text


def test_a_repeated_key_is_noted_as_when_read_from_a_file(hook: Running, tmp_path: Path) -> None:
    """An event that says `level` twice is spooled as its own bytes (pretty-printed lines
    joined), so the stored event carries the same note as the same event read from a file;
    its request body is still left out."""
    plain = [line.decode() for line in GENERATED[0].read_bytes().splitlines()[:3]]
    twice = plain[1].replace('"level":"Metadata"', '"level":"None", "level":\n  "Metadata"', 1)
    assert twice != plain[1]
    secret = K8S / "secretwatch__generated" / "request_response_secret_create.json"
    with_body = secret.read_text().strip()
    body = (
        '{"kind": "EventList",\n "apiVersion": "audit.k8s.io/v1", "items": [\n'
        + ",\n".join([plain[0], twice, with_body, plain[2]])
        + "\n]}"
    ).encode()
    answer = post(hook.url, body)
    assert answer.json() == {"accepted": 4, "rejected": 0}
    spooled = hook.spooled()
    assert b'"level":"None","level":   "Metadata"' in spooled[1]  # members as sent
    assert b"requestObject" not in spooled[2] and b"responseObject" not in spooled[2]
    for value in orjson.loads(with_body)["requestObject"]["data"].values():
        assert value.encode() not in b"".join(spooled)
    as_file = tmp_path / "events.jsonl"
    as_file.write_text("\n".join([plain[0], twice.replace("\n", ""), with_body, plain[2]]) + "\n")
    via_hook = ingest([hook.spool.path], "k8s", tmp_path / "hook.duckdb")
    direct = ingest([as_file], "k8s", tmp_path / "direct.duckdb")
    assert via_hook.events.equals(direct.events)
    notes = list(via_hook.events["note"].dropna())
    assert any(REPEATED_NOTE in note for note in notes)
    single = plain[0].replace('"level":"Metadata"', '"level":"None","level":"Metadata"', 1)
    assert post(hook.url, single.encode()).status_code == 200  # blocking mode, one Event
    assert hook.spooled()[-1] == single.encode()


def test_stop_finishes_the_request_in_flight(tmp_path: Path) -> None:
    """A batch half sent when the service stops is still read, spooled and answered 200;
    after that, nothing is accepted."""
    events = events_of(GENERATED)
    body = event_list(events)
    with running(k8s_webhook.make, settings(), tmp_path) as hook:
        head = (
            f"POST /k8s-audit HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", hook.collector.port), timeout=120) as sock:
            sock.sendall(head + body[:100])
            wait_until(lambda: hook.collector.listening)
            stopping = threading.Thread(target=hook.collector.stop)
            stopping.start()
            wait_until(lambda: not hook.collector.listening)
            sock.sendall(body[100:])
            answer = b""
            while b"\r\n\r\n" not in answer:  # bounded by the socket's timeout
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            stopping.join(30)
            assert not stopping.is_alive()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert len(hook.spooled()) == len(events)
        with pytest.raises(httpx.ConnectError):
            post(hook.url, body)
