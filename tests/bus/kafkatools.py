"""Helpers for the tests against the real Kafka (and Elasticsearch) that `scripts/services`
starts (their addresses come from the `kafka_bootstrap` / `es_url` fixtures of
tests/services.py): unique names per test, configs, reading topics and running CLI
processes, each wait with a deadline."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "secretwatch")


def unique(label: str) -> str:
    """A name no other test (or earlier run) uses: topics, groups, index prefixes."""
    return f"t{uuid.uuid4().hex[:10]}-{label}"


def kafka_section(bootstrap: str, name: str, tmp: Path, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "raw_topic_prefix": f"{name}.raw.",
        "events_topic": f"{name}.events",
        "dead_letter_topic": f"{name}.dead",
        "group_id": name,
        "partitions": 4,
        "ship_state": str(tmp / "ship-state.json"),
    }
    section.update(extra)
    return section


def write_config(tmp: Path, kafka: dict[str, Any], store: dict[str, Any], **more: Any) -> Path:
    path = tmp / f"{kafka['group_id']}.yaml"
    path.write_text(yaml.safe_dump({"store": store, "kafka": kafka, **more}))
    return path


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class TopicReader:
    """Reads every partition of some topics from the beginning, without a group."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        parts = []
        for topic in topics:
            found = wait_for(
                lambda t=topic: self.consumer.partitions_for_topic(t), 30, f"topic {topic}"
            )
            parts += [TopicPartition(topic, p) for p in sorted(found)]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning()
        self.records: list[ConsumerRecord] = []

    def read(self, want: int, timeout: float = 60, settle: float = 1.0) -> list[ConsumerRecord]:
        """Everything read so far once there are at least `want` records, polling `settle`
        seconds more so that extra (duplicate) records would show too."""
        deadline = time.monotonic() + timeout
        while len(self.records) < want:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {len(self.records)} records of {want} in {timeout} s")
            self._poll(200)
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            self._poll(100)
        return self.records

    def read_until(
        self, done: Callable[[list[ConsumerRecord]], bool], what: str, timeout: float = 60
    ) -> list[ConsumerRecord]:
        """Everything read so far once `done(records)` holds; fail naming `what` at the
        deadline. (A condition, not `settle` seconds that a loaded machine may outlast.)"""
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"read {len(self.records)} records in {timeout:.0f} s, not yet {what}"
                )
            self._poll(200)
        return self.records

    def _poll(self, timeout_ms: int) -> None:
        for recs in self.consumer.poll(timeout_ms=timeout_ms, max_records=10_000).values():
            self.records.extend(recs)

    def close(self) -> None:
        self.consumer.close()


class Proc:
    """A `secretwatch` CLI process with its output in files (never a pipe that could fill)."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.name = name
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.popen = subprocess.Popen([CLI, *args], stdout=out, stderr=err)

    def log(self) -> str:
        return self.err.read_text(errors="replace") + self.out.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            message = f"{self.name} did not stop within {timeout} s:\n{self.log()}"
            raise AssertionError(message) from None

    def kill9(self) -> None:
        self.popen.kill()
        self.popen.wait(10)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            message = f"{self.name} still running after {timeout} s:\n{self.log()}"
            raise AssertionError(message) from None


class CuttableProxy:
    """A TCP forwarder on 127.0.0.1 between a member and a server: `cut()` refuses new
    connections and drops open ones (the server looks down); `restore()` serves again on the
    same port. Stands for an outage without restarting the server, which would lose its data."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = self.conns, []
        if listener is not None:
            _close(listener)  # shut down first: a close alone leaves a blocked accept()
            # listening on, and `restore` could not bind the port again
        for conn in conns:
            _close(conn)

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self.lock:
                if self.listener is not listener:
                    _close(client)
                    _close(server)
                    return
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


class StoreGate:
    """An HTTP relay on 127.0.0.1 in front of Elasticsearch that passes the first `allow`
    bulk requests whose body holds `marked` (by default: writes of events) and holds
    every later one until `release()`: a member behind it cannot store its part of a
    stream to the end before the test acts, however fast or loaded the machine. Other
    requests pass. A held request goes on after `release()` (or HOLD_LIMIT_S), also when
    its sender was killed meanwhile, as a request already sent would."""

    HOLD_LIMIT_S = 300.0

    def __init__(self, target_url: str, allow: int, marked: bytes = b"-events-") -> None:
        target = urlsplit(target_url)
        self.allow, self.passed, self.marked = allow, 0, marked
        self.holding = threading.Event()  # a write is held
        self.released = threading.Event()
        self.lock = threading.Lock()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                write = self.path.split("?")[0].endswith("/_bulk") and gate.marked in body
                if write and not gate.pass_write():
                    gate.holding.set()
                    gate.released.wait(gate.HOLD_LIMIT_S)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                try:
                    skip = {"host", "content-length"}
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                    conn.request(self.command, self.path, body, headers)
                    response = conn.getresponse()
                    status, payload = response.status, response.read()
                    drop = {"content-length", "transfer-encoding", "connection"}
                    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in drop]
                finally:
                    conn.close()
                self.send_response(status)
                for key, value in kept:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def pass_write(self) -> bool:
        with self.lock:
            if self.released.is_set() or self.passed < self.allow:
                self.passed += 1
                return True
            return False

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Offsets:
    """A group's committed offsets on a topic and the topic's end offsets."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        found = self.admin.list_group_offsets(group).get(group, {})
        return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == topic}

    def end(self, topic: str) -> dict[int, int]:
        parts = [TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic)]
        return {tp.partition: n for tp, n in self.consumer.end_offsets(parts).items()}

    def lag(self, group: str, topic: str) -> int:
        done = self.committed(group, topic)
        return sum(n - done.get(p, 0) for p, n in self.end(topic).items())

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


def drop(bootstrap: str, name: str, es_url: str | None = None) -> None:
    """Delete what a test made under `name`: its topics and (with `es_url`) its indices."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(f"{name}.")]
        if mine:
            admin.delete_topics(mine, raise_errors=False)
    finally:
        admin.close()
    if es_url is not None:
        from elasticsearch import Elasticsearch

        client = Elasticsearch(es_url)
        try:
            client.indices.delete(index=f"{name}-*", allow_no_indices=True)
        finally:
            client.close()
