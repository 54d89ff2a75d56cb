"""`secretwatch ship`: audit records onto Kafka, unparsed, one raw topic per source.

Each record's bytes go out unchanged (a JSON line, or a whole pretty-printed document), so
nothing a parser might later want is lost; normalization happens in `secretwatch run`. The
key is the source's natural key, so related records share a partition: a Vault request and
its response (`request.id`), CloudTrail `eventID`, GCP `insertId`, Azure `correlationId`
(or `id`), Kubernetes `auditID`; otherwise `file:offset`. Files whose format cannot be
recognised go to the dead-letter topic with the reason, like ingest's dead letters.

Follow mode reuses the follower of `ingest --follow` (rotation, truncation, restarts); its
positions live in a small state file, written atomically and only after Kafka acknowledged
every record before them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import orjson
from rich.console import Console

from pipeline.bus import kafka
from pipeline.bus.follow import open_followed, poll_followed
from pipeline.config import Config, KafkaConfig
from pipeline.errors import InputError, ParseError
from pipeline.ingest import IngestSummary, expand_paths, feed_stream, not_a_log
from pipeline.sources import SOURCES, new_parser
from pipeline.sources.base import FeedResult, Record, json_start, unwrap
from pipeline.sources.formats import RecognizingParser
from pipeline.sources.framing import Chunk, file_records, line_records
from pipeline.sources.vault import Head, pair_key
from pipeline.store.base import Checkpoint

_vault_head = msgspec.json.Decoder(Head).decode
_KEY_FIELDS = {
    "aws": ("eventID",),
    "gcp": ("insertId",),
    "azure": ("correlationId", "id"),
    "k8s": ("auditID",),
}


def record_key(fmt: str, raw: bytes, file: str, offset: int) -> bytes:
    """The partitioning key of one raw record.

    >>> record_key("k8s", b'{"auditID":"a-1","stage":"ResponseComplete"}', "f", 0)
    b'a-1'
    >>> record_key("aws", b'{"Records":[{"eventID":"e1"},{"eventID":"e2"}]}', "f", 9)
    b'f:9'
    >>> record_key("vault", b'vault-audit: {"type":"request","request":{"id":"r1"}}', "f", 0)
    b'r1'
    """
    try:
        if fmt == "vault":  # after the audit device's `prefix`, so a pair shares a partition
            return pair_key(_vault_head(raw[json_start(raw) :])).encode()
        items = list(unwrap(orjson.loads(raw)))
        if len(items) == 1 and isinstance(items[0][1], dict):
            for name in _KEY_FIELDS.get(fmt, ()):
                value = items[0][1].get(name)
                if isinstance(value, str) and value:
                    return value.encode()
    except (msgspec.DecodeError, orjson.JSONDecodeError, ParseError):
        pass  # a malformed record still ships; `run` dead-letters it
    return f"{file}:{offset}".encode()


@dataclass
class ShipSummary(IngestSummary):
    shipped: Counter[str] = field(default_factory=Counter)  # records per topic


class Shipper:
    """Produces raw records; `flush` returns once Kafka acknowledged all of them."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.producer = kafka.producer(cfg)
        self.errors = kafka.SendErrors()
        self.summary = ShipSummary()

    def parser_for(self, fmt: str, backend: str | None) -> _RecordProducer:
        if fmt not in SOURCES:
            new_parser(fmt)  # raises the error listing valid formats
        return _RecordProducer(self, fmt)

    def send(self, topic: str, value: bytes, key: bytes) -> None:
        self.producer.send(topic, value=value, key=key).add_errback(self.errors)
        self.summary.shipped[topic] += 1

    def take(self, result: FeedResult) -> None:
        """Account for a parser result; its dead letters go to the dead-letter topic."""
        self.summary.add(result)
        for letter in result.dead:
            where = f"{letter.file}:{letter.offset}".encode()
            self.send(self.cfg.dead_letter_topic, kafka.dead_letter_value(letter), where)

    def flush(self) -> None:
        kafka.flush(self.producer, self.errors, f"kafka at {self.cfg.bootstrap_servers}")

    def close(self) -> None:
        self.producer.close()


class _RecordProducer:
    """Takes a parser's place behind `RecognizingParser`: the records of a file whose format is
    known are produced, not parsed (each counts as consumed)."""

    def __init__(self, shipper: Shipper, fmt: str) -> None:
        self.shipper, self.fmt = shipper, fmt
        self.topic = kafka.raw_topic(shipper.cfg, fmt)

    def feed(self, records: list[Record], file: str) -> FeedResult:
        send, fmt, topic = self.shipper.send, self.fmt, self.topic
        for raw, _, offset in records:
            value = bytes(raw)
            send(topic, value, record_key(fmt, value, file, offset))
        return FeedResult(consumed=len(records))

    def flush(self, file: str) -> FeedResult:
        return FeedResult()

    def pending_position(self) -> tuple[int, int] | None:
        return None


def ship_files(
    paths: Iterable[str],
    cfg: Config,
    kcfg: KafkaConfig,
    fmt: str | None = None,
    on_advance: Callable[[int], None] | None = None,
) -> ShipSummary:
    """Ship whole files (plain, gzip, folders, `-` for stdin) once."""
    shipper = Shipper(kcfg)
    summary = shipper.summary
    try:
        for path in expand_paths(paths):
            if path is not None and not_a_log(path):  # documentation, a DuckDB store
                summary.files_skipped.append(str(path))
                continue
            name = "<stdin>" if path is None else str(path)
            chunks = (
                line_records(sys.stdin.buffer)
                if path is None
                else file_records(path, _progress(on_advance))
            )
            _ship_stream(shipper, chunks, name, fmt)
        shipper.flush()
    finally:
        shipper.close()
    return summary


def _ship_stream(shipper: Shipper, chunks: Iterable[Chunk], name: str, fmt: str | None) -> None:
    summary = shipper.summary
    summary.files += 1
    parser = RecognizingParser(fmt, {}, summary.formats, shipper.parser_for)
    for result in feed_stream(parser, chunks, name, fmt):
        shipper.take(result)


def _progress(on_advance: Callable[[int], None] | None) -> Callable[[int], None] | None:
    if on_advance is None:
        return None
    last = [0]

    def seen(position: int) -> None:
        on_advance(position - last[0])
        last[0] = position

    return seen


class ShipState:
    """`ship --follow` positions: one checkpoint per followed file, in a JSON file replaced
    atomically (write, fsync, rename), so a crash leaves the old or the new state whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: dict[str, Checkpoint] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                self.saved = {k: Checkpoint(**v) for k, v in doc["files"].items()}
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"ship state {path} is damaged ({exc}); remove it to ship from the start"
                ) from None

    def checkpoint(self, key: str) -> Checkpoint | None:
        return self.saved.get(key)

    def save(self, checkpoint: Checkpoint) -> None:
        self.saved[checkpoint.key] = checkpoint
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": 1, "files": {k: asdict(v) for k, v in self.saved.items()}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(doc, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


def follow_ship(
    paths: list[str],
    cfg: Config,
    kcfg: KafkaConfig,
    fmt: str | None = None,
    console: Console | None = None,
    stop: threading.Event | None = None,
) -> ShipSummary:
    """Ship files as they grow until `stop` is set (or Ctrl-C / SIGTERM). A file's position
    is saved only after Kafka acknowledged every record before it: a kill ships at most a
    few records twice (the store absorbs them), never skips one."""
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state = ShipState(kcfg.ship_state)
    shipper = Shipper(kcfg)
    summary = shipper.summary
    files = []
    try:
        for p in paths:
            files.append(
                open_followed(
                    Path(p), state.checkpoint, fmt, {}, summary, console, shipper.parser_for
                )
            )
        while not stop.is_set():
            grew = False
            for followed in files:
                result = poll_followed(followed, summary, cfg)
                if result.accounted or result.dead:
                    grew = True
                    shipper.take(result)
                    shipper.flush()
                    state.save(followed.checkpoint())
            if not grew:
                stop.wait(cfg.ingest.follow_poll_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        for followed in files:
            if followed.handle:
                followed.handle.close()
        shipper.close()
    return summary
