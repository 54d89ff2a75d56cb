"""Follow mode end to end: real files in tmp_path, the real DuckDB store, the follower on a
background thread, stopped through its `stop` event.

The follower thread owns the store's connection while it runs; the test thread reads through
a DuckDB cursor (its own connection to the same database) made before the thread starts, and
uses the store object itself only while no follower is running.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PosixPath

import duckdb
import orjson
import pytest

from pipeline.bus import follow as follow_mod
from pipeline.bus.follow import follow_files
from pipeline.bus.followed import Followed
from pipeline.config import Config
from pipeline.ingest import IngestSummary
from pipeline.record import PROVISIONAL_NOTE
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.duckdb.connection import connect, disconnect

POLL = 0.02
WAIT_SECONDS = 60.0  # bounds, not expectations: a loaded machine may take long
BASE = datetime(2026, 5, 1, 3, 10, tzinfo=UTC)
DENIED = "1 error occurred:\n\t* permission denied\n\n"


# -- Vault audit lines --------------------------------------------------------------------
def rid(n: int) -> str:
    """A stable request id per call number."""
    return str(uuid.UUID(int=0xA0D17 << 64 | n))


def _entry(n: int, kind: str, error: str | None = None) -> dict:
    entry: dict = {
        "time": (BASE + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "type": kind,
        "auth": {
            "display_name": "approle",
            "metadata": {"role_name": "orders-api"},
            "policies": ["default"],
        },
        "request": {
            "id": rid(n),
            "operation": "read",
            "mount_type": "kv",
            "path": "secret/data/app/db",
            "remote_address": "10.0.0.5",
        },
    }
    if kind == "response":
        entry["response"] = {"data": {"data": f"hmac-sha256:{n:064x}"}}
    if error is not None:
        entry["error"] = error
    return entry


def request(n: int) -> bytes:
    return orjson.dumps(_entry(n, "request")) + b"\n"


def response(n: int, error: str | None = None) -> bytes:
    return orjson.dumps(_entry(n, "response", error)) + b"\n"


def pairs(numbers: range) -> bytes:
    return b"".join(request(n) + response(n) for n in numbers)


def ids(numbers: range) -> set[str]:
    return {rid(n) for n in numbers}


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


# -- the follower on a thread and a reader beside it ---------------------------------------
class Follower:
    """`follow_files` on a background thread, stopped by its event; errors re-raised."""

    def __init__(self, paths: list[Path], store: DuckDBStore, config: Config) -> None:
        self.stop = threading.Event()
        self.summary: IngestSummary | None = None
        self.error: BaseException | None = None
        self._args = ([str(p) for p in paths], store, config)
        self.thread = threading.Thread(target=self._run, name="follower", daemon=True)

    def _run(self) -> None:
        try:
            self.summary = follow_files(*self._args, stop=self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def start(self) -> Follower:
        self.thread.start()
        return self

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"follower failed: {self.error!r}") from self.error
        if not self.thread.is_alive() and not self.stop.is_set():
            raise AssertionError("follower thread ended without being stopped")

    def halt(self) -> IngestSummary:
        self.stop.set()
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), f"follower did not stop within {WAIT_SECONDS:.0f} s"
        self.check()
        assert self.summary is not None
        return self.summary


class Reader:
    """Reads the store from the test thread through a connection of its own."""

    def __init__(self, store: DuckDBStore) -> None:
        self.cursor: duckdb.DuckDBPyConnection = connect(store.path, read_only=False)

    def close(self) -> None:
        disconnect(self.cursor)

    def count(self) -> int:
        row = self.cursor.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def request_ids(self) -> list[str]:
        rows = self.cursor.execute("SELECT request_id FROM events ORDER BY ts").fetchall()
        return [r[0] for r in rows]

    def wait_for(self, expected: int, follower: Follower) -> None:
        """Wait (bounded) until exactly `expected` events are stored, then check no more come."""
        deadline = time.monotonic() + WAIT_SECONDS
        count = self.count()
        while count < expected:
            follower.check()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"store holds {count} events after {WAIT_SECONDS:.0f} s, expected {expected}"
                )
            time.sleep(POLL)
            count = self.count()
        time.sleep(5 * POLL)  # a few more polls: nothing extra may arrive
        follower.check()
        count = self.count()
        assert count == expected, f"store holds {count} events, expected exactly {expected}"


@pytest.fixture
def config() -> Config:
    return Config.model_validate({"ingest": {"follow_poll_seconds": POLL}})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "store" / "sw.duckdb")
    s.open()
    yield s
    s.close()


@pytest.fixture
def reader(store: DuckDBStore) -> Iterator[Reader]:
    r = Reader(store)
    yield r
    r.close()


@pytest.fixture
def start(
    store: DuckDBStore, config: Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Follower]]:
    """Start a follower on the test's store; every follower is stopped at teardown.

    A request waiting for its response is never stored alone because the file went quiet
    (a slow machine's pause would make one), unless the test sets IDLE_FLUSH_SECONDS."""
    monkeypatch.setattr(follow_mod, "IDLE_FLUSH_SECONDS", float("inf"))
    started: list[Follower] = []

    def _start(*paths: Path) -> Follower:
        follower = Follower(list(paths), store, config).start()
        started.append(follower)
        return follower

    yield _start
    for follower in started:
        follower.stop.set()
    for follower in started:
        follower.thread.join(WAIT_SECONDS)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder / "audit.log"


def key_of(path: Path) -> str:
    return str(path.resolve())


def stored_ids(store: DuckDBStore) -> list[str]:
    return list(store.events()["request_id"])


# -- the cases ----------------------------------------------------------------------------
def test_follows_a_growing_file_including_lines_written_in_pieces(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(10)))
    follower = start(log)
    reader.wait_for(10, follower)

    append(log, pairs(range(10, 14)))
    for n in range(14, 20):  # each pair in two writes split mid-line, read in between
        line = request(n) + response(n)
        cut = len(request(n)) + len(response(n)) // 2 if n % 2 else len(request(n)) // 2
        append(log, line[:cut])
        time.sleep(3 * POLL)
        append(log, line[cut:])
    reader.wait_for(20, follower)
    summary = follower.halt()

    got = stored_ids(store)
    assert sorted(got) == sorted(ids(range(20)))
    assert len(set(got)) == 20
    assert (summary.events, summary.stored, summary.duplicates) == (20, 20, 0)
    assert summary.records == 40 and summary.consumed == 40 and summary.dead_lettered == 0
    assert store.dead_letters().empty
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.offset, cp.line, cp.inode) == (log.stat().st_size, 41, log.stat().st_ino)


def test_follows_across_rotation_by_rename(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(5)))
    follower = start(log)
    reader.wait_for(5, follower)

    append(log, pairs(range(5, 8)))  # the last lines of the old file, right before rotation
    rotated = log.with_name("audit.log.1")
    log.rename(rotated)
    log.write_bytes(pairs(range(8, 12)))
    reader.wait_for(12, follower)
    append(log, pairs(range(12, 14)))  # the new file keeps growing
    reader.wait_for(14, follower)
    summary = follower.halt()

    assert sorted(stored_ids(store)) == sorted(ids(range(14)))
    assert summary.duplicates == 0
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.inode, cp.offset) == (log.stat().st_ino, log.stat().st_size)
    assert cp.inode != rotated.stat().st_ino


def test_rotation_keeps_lines_written_to_the_old_file_just_before_it(log: Path) -> None:
    """Deterministic form of the rotation race: the writer appends its last lines to the old
    file and the file is rotated between the follower's empty read and its look at the path."""

    class RacingPath(PosixPath):
        def stat(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if self.name == "audit.log" and not rotated.exists():
                append(self, pairs(range(3, 5)))  # still written through the old inode
                os.rename(self, rotated)
                Path(self).write_bytes(pairs(range(5, 7)))
            return super().stat(*args, **kwargs)

    rotated = log.with_name("audit.log.1")
    log.write_bytes(pairs(range(3)))
    followed = Followed(RacingPath(log), None, {})
    followed.open(log.open("rb"))
    summary = IngestSummary()
    rows = []
    try:
        for _ in range(6):
            rows += follow_mod._poll(followed, summary, Config()).rows
    finally:
        assert followed.handle is not None
        followed.handle.close()
    assert sorted(r.request_id for r in rows) == sorted(ids(range(7)))


def test_copytruncate_reads_the_file_again_from_the_start(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(10)))
    follower = start(log)
    reader.wait_for(10, follower)
    inode = log.stat().st_ino

    shutil.copyfile(log, log.with_name("audit.log.1"))
    os.truncate(log, 0)
    append(log, pairs(range(10, 13)))  # shorter than before: the follower sees the truncation
    reader.wait_for(13, follower)
    append(log, pairs(range(13, 15)))
    reader.wait_for(15, follower)
    summary = follower.halt()

    assert sorted(stored_ids(store)) == sorted(ids(range(15)))
    assert (summary.events, summary.stored) == (15, 15)
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.inode, cp.offset, cp.line) == (inode, log.stat().st_size, 11)


def test_restart_resumes_from_the_checkpoint(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(5)))
    first = start(log)
    reader.wait_for(5, first)
    assert first.halt().events == 5
    cp = store.checkpoint(key_of(log))
    assert cp is not None and (cp.offset, cp.line) == (log.stat().st_size, 11)

    last = request(9) + response(9)
    append(log, pairs(range(5, 9)) + last[:100])  # written while stopped, ending mid-line
    second = start(log)
    reader.wait_for(9, second)
    append(log, last[100:])
    reader.wait_for(10, second)
    summary = second.halt()

    assert (summary.records, summary.events, summary.stored) == (10, 5, 5)  # nothing re-read
    assert sorted(stored_ids(store)) == sorted(ids(range(10)))
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.inode, cp.offset, cp.line) == (log.stat().st_ino, log.stat().st_size, 21)


def test_restart_after_rewrite_in_place_past_the_checkpoint_reads_from_the_start(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    # copytruncate while stopped, and the new content already longer than the old offset:
    # same inode, big enough, but not the same file. Resuming at the old offset would skip
    # the new file's first events; the fingerprint tells them apart.
    log.write_bytes(pairs(range(3)))
    first = start(log)
    reader.wait_for(3, first)
    first.halt()
    inode = log.stat().st_ino
    with log.open("r+b") as handle:  # rewritten in place: the inode stays
        handle.truncate(0)
        handle.write(pairs(range(3, 10)))
    assert log.stat().st_ino == inode
    second = start(log)
    reader.wait_for(10, second)
    summary = second.halt()

    assert sorted(stored_ids(store)) == sorted(ids(range(10)))
    assert (summary.events, summary.stored) == (7, 7)
    cp = store.checkpoint(key_of(log))
    assert cp is not None and cp.offset == log.stat().st_size
    assert cp.fingerprint is not None and cp.fingerprint.startswith("256:")


def test_restart_after_rotation_while_stopped_finishes_the_old_file_first(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(5)))
    first = start(log)
    reader.wait_for(5, first)
    first.halt()

    # The old file's tail, never read before the rotation, with one bad line in it.
    append(log, pairs(range(5, 7)) + b"not json\n" + pairs(range(7, 8)))
    rotated = log.with_name("audit.log.1")
    log.rename(rotated)
    log.write_bytes(pairs(range(8, 12)))
    second = start(log)
    reader.wait_for(12, second)
    summary = second.halt()

    assert sorted(stored_ids(store)) == sorted(ids(range(12)))
    assert (summary.events, summary.stored) == (7, 7)
    # The dead letter names the file its line number belongs to: the rotated one.
    letters = store.dead_letters()
    assert list(zip(letters["file"], letters["line"], strict=True)) == [(str(rotated), 15)]
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.inode, cp.offset) == (log.stat().st_ino, log.stat().st_size)


def test_restart_after_rotation_then_stop_mid_old_file_resumes_there(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    """Two restarts around one rotation: the checkpoint may point into the rotated file."""
    log.write_bytes(pairs(range(3)))
    first = start(log)
    reader.wait_for(3, first)
    first.halt()
    old_inode = log.stat().st_ino
    log.rename(log.with_name("audit.log.1"))
    log.write_bytes(b"")  # the new file is still empty
    second = start(log)
    reader.wait_for(3, second)
    second.halt()
    append(log, pairs(range(3, 6)))
    third = start(log)
    reader.wait_for(6, third)
    third.halt()

    assert sorted(stored_ids(store)) == sorted(ids(range(6)))
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert cp.inode != old_inode
    assert (cp.inode, cp.offset) == (log.stat().st_ino, log.stat().st_size)


def test_pending_request_holds_the_checkpoint_back_across_a_restart(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(3)))
    pending_offset = log.stat().st_size
    append(log, request(3))  # its response is not written yet
    append(log, pairs(range(4, 5)))  # a later, answered call
    first = start(log)
    reader.wait_for(4, first)  # 0-2 and 4: the request waits for its response
    first.halt()

    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.offset, cp.line) == (pending_offset, 7)
    assert rid(3) not in stored_ids(store)

    second = start(log)
    time.sleep(5 * POLL)  # let it read the request again before the response appears
    append(log, response(3, DENIED))
    reader.wait_for(5, second)
    summary = second.halt()

    events = store.events()
    assert sorted(events["request_id"]) == sorted(ids(range(5)))
    call = events[events["request_id"] == rid(3)].iloc[0]
    assert call["event_id"] == rid(3)
    assert call["outcome"] == "denied"
    assert call["error"] == DENIED
    assert call["note"] is None  # made from the response, not the lone request
    assert summary.stored == 1  # the re-read call 4 was absorbed by the store
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.offset, cp.line) == (log.stat().st_size, 11)


def test_malformed_line_is_dead_lettered_and_following_continues(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    log.write_bytes(pairs(range(2)))
    follower = start(log)
    reader.wait_for(2, follower)

    bad = b'{"time": "2026-05-01T03:10:00Z", "type": "request", "request": {"id": \n'
    append(log, pairs(range(2, 3)) + bad + pairs(range(3, 5)))
    reader.wait_for(5, follower)
    summary = follower.halt()

    assert sorted(stored_ids(store)) == sorted(ids(range(5)))
    dead = store.dead_letters()
    assert len(dead) == 1
    letter = dead.iloc[0]
    assert letter["file"] == str(log)
    assert letter["line"] == 7
    assert letter["offset"] == len(pairs(range(3)))
    assert letter["format"] == "vault"
    assert letter["reason"].startswith("not valid JSON")
    assert bytes(letter["raw"]) == bad.rstrip(b"\n")
    assert summary.dead_lettered == 1 and summary.dead_records == 1
    cp = store.checkpoint(key_of(log))
    assert cp is not None and (cp.offset, cp.line) == (log.stat().st_size, 12)


# -- late responses and repeated offsets ---------------------------------------------------
def test_late_response_after_idle_flush_keeps_its_outcome(
    log: Path,
    store: DuckDBStore,
    reader: Reader,
    start: Callable[..., Follower],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow_mod, "IDLE_FLUSH_SECONDS", 0.2)
    log.write_bytes(pairs(range(2)) + request(2))
    follower = start(log)
    reader.wait_for(3, follower)  # the lone request, flushed once the file went quiet
    append(log, response(2, DENIED))
    deadline = time.monotonic() + WAIT_SECONDS
    outcome = None
    while time.monotonic() < deadline and outcome != "denied":
        time.sleep(POLL)
        row = reader.cursor.execute(
            "SELECT outcome FROM events WHERE request_id = ?", [rid(2)]
        ).fetchone()
        outcome = row[0] if row else None
    follower.halt()
    assert outcome == "denied"


def test_new_bad_line_after_copytruncate_is_dead_lettered(
    log: Path, store: DuckDBStore, reader: Reader, start: Callable[..., Follower]
) -> None:
    bad = b"garbage, not JSON\n"
    log.write_bytes(pairs(range(1)) + bad + pairs(range(1, 5)))
    follower = start(log)
    reader.wait_for(5, follower)
    os.truncate(log, 0)
    # A new bad line at the same offset is a new dead letter (the same bytes at the same
    # place count once, so re-ingesting a file does not repeat its dead letters).
    append(log, pairs(range(5, 6)) + b"more garbage, not JSON\n" + pairs(range(6, 7)))
    reader.wait_for(7, follower)
    summary = follower.halt()
    assert summary.dead_lettered == 2
    assert list(store.dead_letters()["line"]) == [3, 3]


def test_detected_format_gets_its_configured_backend_name(
    log: Path, store: DuckDBStore, reader: Reader
) -> None:
    config = Config.model_validate(
        {"ingest": {"follow_poll_seconds": POLL}, "backends": {"vault": "vault-prod-eu"}}
    )
    log.write_bytes(pairs(range(2)))
    follower = Follower([log], store, config).start()
    reader.wait_for(2, follower)
    follower.halt()
    assert set(store.events()["backend"]) == {"vault-prod-eu"}


# -- copytruncate, driven poll by poll -------------------------------------------------------
# logrotate's copytruncate: copy the file's bytes to a sibling, then truncate the file in
# place; the writer goes on appending (O_APPEND) at the new end, offset 0. Lines written
# between the copy and the truncation are in neither file: logrotate itself loses them.
def copytruncate(log: Path, copy_name: str, window: bytes = b"") -> Path:
    """Rotate `log` the way logrotate's copytruncate does; `window` is written by the writer
    between the copy and the truncation (lost by logrotate, unless already read)."""
    copy = log.with_name(copy_name)
    shutil.copyfile(log, copy)
    append(log, window)
    os.truncate(log, 0)
    return copy


class Stepper:
    """The follow loop's step run by hand, one poll at a time, on the test's own thread: each
    poll's batch is stored with the file's checkpoint, as `follow_files` does. No thread, no
    sleep: what the follower sees between two writes is decided by the test."""

    def __init__(self, log: Path, store: DuckDBStore) -> None:
        self.store = store
        self.summary = IngestSummary()
        self.rows: list = []  # every event the follower produced, provisional ones included
        self.followed = follow_mod.open_followed(
            log, store.checkpoint, None, {}, self.summary, None
        )

    def step(self) -> bool:
        return follow_mod.step(
            self.followed, self.store, Config(), self.summary, on_stored=self.rows.extend
        )

    def drain(self) -> None:
        """Poll until several polls in a row find nothing (a rotation can take a quiet poll
        or two: noticing it, opening the copy, leaving the copy)."""
        quiet = 0
        for _ in range(500):
            quiet = 0 if self.step() else quiet + 1
            if quiet == 5:
                return
        raise AssertionError("the follower still reads after 500 polls")

    def kill(self) -> None:
        """Stop without any goodbye, as kill -9 does: only the stored checkpoint remains."""
        if self.followed.handle is not None:
            self.followed.handle.close()


@pytest.fixture
def stepper(store: DuckDBStore) -> Iterator[Callable[[Path], Stepper]]:
    """Make steppers on the test's store; their files are closed at teardown."""
    made: list[Stepper] = []

    def _make(log: Path) -> Stepper:
        made.append(Stepper(log, store))
        return made[-1]

    yield _make
    for s in made:
        s.kill()


@pytest.fixture
def no_idle_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """However slow the machine, no request counts alone because the file went quiet."""
    monkeypatch.setattr(follow_mod, "IDLE_FLUSH_SECONDS", float("inf"))


def assert_paired_once(follower: Stepper, store: DuckDBStore, expected: set[str]) -> None:
    events = store.events()
    assert sorted(events["request_id"]) == sorted(expected)  # each one once, none extra
    assert events["note"].isna().all()  # made from request and response, none provisional
    provisional = [r.request_id for r in follower.rows if r.note == PROVISIONAL_NOTE]
    assert provisional == []  # not even for a while
    assert store.dead_letters().empty
    assert follower.summary.stored == len(expected)  # no provisional one replaced later


@pytest.mark.usefixtures("no_idle_flush")
def test_a_follower_behind_stores_what_is_waiting_in_few_large_batches(
    log: Path,
    store: DuckDBStore,
    stepper: Callable[[Path], Stepper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll reads on while the file holds more, up to `BATCH_EVENTS` events in one
    stored batch (one store transaction, one WAL fsync), not one read's worth; every pair
    is still stored once, paired."""
    monkeypatch.setattr(follow_mod, "READ_BYTES", 16 << 10)
    monkeypatch.setattr(follow_mod, "BATCH_EVENTS", 500)
    log.write_bytes(pairs(range(1200)))
    assert log.stat().st_size > 20 * follow_mod.READ_BYTES
    follower = stepper(log)
    writes: list[int] = []
    real = store.write_batch

    def counted(rows, dead=(), checkpoints=()):  # type: ignore[no-untyped-def]
        writes.append(len(rows))
        return real(rows, dead, checkpoints)

    monkeypatch.setattr(store, "write_batch", counted)
    follower.drain()
    assert 500 <= writes[0] < 600  # read on past 500 events' worth only to a read's end
    assert len([n for n in writes if n]) == 3
    assert_paired_once(follower, store, ids(range(1200)))


@pytest.mark.usefixtures("no_idle_flush")
def test_copytruncate_loses_nothing_written_before_the_copy_or_after_the_truncation(
    log: Path, store: DuckDBStore, stepper: Callable[[Path], Stepper]
) -> None:
    log.write_bytes(pairs(range(10)))
    follower = stepper(log)
    follower.drain()

    # 1. A request read before the rotation, its response written after it; two pairs
    #    written before the copy but not read yet; the new file shorter than the old offset.
    append(log, pairs(range(10, 15)) + request(15))
    follower.drain()
    append(log, pairs(range(16, 18)))
    copytruncate(log, "audit.log.1")
    append(log, response(15) + pairs(range(18, 20)))
    follower.drain()

    # 2. The follower reads half a line (the writer mid-write); the writer finishes it, the
    #    copy takes it whole, and the truncated file grows past the old offset before the
    #    follower looks again: only the fingerprint of its first bytes tells it changed.
    first = request(20)
    append(log, pairs(range(20, 23)) + first[:50])
    follower.drain()
    append(log, first[50:] + request(23))
    log.with_name("audit.log.1").rename(log.with_name("audit.log.2"))  # rotate 2
    copytruncate(log, "audit.log.1")
    append(log, response(20) + response(23) + pairs(range(24, 60)))
    assert log.stat().st_size > follower.followed.offset
    follower.drain()

    # 3. The irreducible window: calls 60-61 are written between the copy and the
    #    truncation; logrotate copies them nowhere. Everything before and after is read.
    append(log, request(62))
    copytruncate(log, "audit.log-20261202", window=pairs(range(60, 62)))
    append(log, response(62) + pairs(range(63, 66)))
    follower.drain()
    follower.kill()

    assert_paired_once(follower, store, ids(range(60)) | ids(range(62, 66)))
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.inode, cp.offset, cp.line) == (log.stat().st_ino, log.stat().st_size, 8)


@pytest.mark.usefixtures("no_idle_flush")
def test_3000_calls_across_many_copytruncates_are_all_stored_paired(
    log: Path, store: DuckDBStore, stepper: Callable[[Path], Stepper]
) -> None:
    """The reported run, made deterministic: 3,000 calls, the follower polling at seeded
    moments (mid-line among them), logrotate's copytruncate (rotate 2) at seeded moments,
    between a request and its response among them. Between two rotations the follower has
    finished with the first (it polls every 0.5 s; logrotate runs daily): it has left the
    copy and no request read from the copy still waits. (Two rotations closer than that:
    the requests still waiting from the first copy are stored provisionally, and replaced
    when their responses are read, for a restart can go back one copy, not two.)"""
    rng = random.Random(14)
    log.write_bytes(b"")
    follower = stepper(log)
    rotations, looked = 0, True

    def maybe_poll() -> None:
        nonlocal looked
        if rng.random() < 0.03:
            follower.step()
            looked = True

    def maybe_rotate() -> None:
        nonlocal rotations, looked
        settled = not follower.followed.reading and follower.followed.behind is None
        if looked and settled and rng.random() < 0.004:
            looked = False
            if log.with_name("audit.log.1").exists():
                log.with_name("audit.log.1").replace(log.with_name("audit.log.2"))
            copytruncate(log, "audit.log.1")
            rotations += 1

    for n in range(3000):
        for line in (request(n), response(n)):
            cut = rng.randrange(1, len(line))
            append(log, line[:cut])  # the writer is mid-line
            maybe_poll()
            append(log, line[cut:])
            maybe_poll()
            maybe_rotate()
    follower.drain()

    assert rotations >= 10
    assert_paired_once(follower, store, ids(range(3000)))


@pytest.mark.usefixtures("no_idle_flush")
def test_copytruncate_then_kill_resumes_in_the_copy_without_gaps(
    log: Path,
    store: DuckDBStore,
    stepper: Callable[[Path], Stepper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed at every stage of a copytruncate: before noticing it, while reading the copy,
    and after leaving the copy with a request from it still waiting for its response."""
    monkeypatch.setattr(follow_mod, "READ_BYTES", 700)  # a few lines per poll
    monkeypatch.setattr(follow_mod, "BATCH_EVENTS", 0)  # and one read per poll
    log.write_bytes(pairs(range(3)))
    first = stepper(log)
    first.drain()
    pending_at = log.stat().st_size
    append(log, request(3) + pairs(range(4, 12)))
    copy = copytruncate(log, "audit.log.1")
    append(log, pairs(range(12, 14)))
    first.kill()  # 1. rotated while stopped: the checkpoint's offset is beyond the new file

    second = stepper(log)
    assert second.followed.reading == str(copy)  # found by its first bytes
    for _ in range(20):
        second.step()
        cp = store.checkpoint(key_of(log))
        assert cp is not None
        if cp.inode == copy.stat().st_ino:
            break
    # Request 3 still waits for its response: the checkpoint stays on it, in the copy.
    assert (cp.inode, cp.offset, cp.line) == (copy.stat().st_ino, pending_at, 7)
    assert second.followed.reading == str(copy)
    second.kill()  # 2. in the middle of the copy

    third = stepper(log)
    third.drain()
    assert third.followed.reading == ""  # on the truncated file again
    cp = store.checkpoint(key_of(log))
    assert cp is not None and (cp.inode, cp.offset) == (copy.stat().st_ino, pending_at)
    third.kill()  # 3. past the copy, with its request 3 unanswered

    append(log, response(3) + pairs(range(14, 16)))  # the answer comes after the rotation
    last = stepper(log)
    last.drain()
    last.kill()

    events = store.events()
    assert sorted(events["request_id"]) == sorted(ids(range(16)))
    assert events["note"].isna().all()
    rows = second.rows + third.rows + last.rows
    assert [r for r in rows if r.note == PROVISIONAL_NOTE] == []
    assert store.dead_letters().empty
    cp = store.checkpoint(key_of(log))
    assert cp is not None
    assert (cp.inode, cp.offset) == (log.stat().st_ino, log.stat().st_size)


@pytest.mark.usefixtures("no_idle_flush")
def test_copy_taken_mid_write_dead_letters_only_the_cut_line(
    log: Path, store: DuckDBStore, stepper: Callable[[Path], Stepper]
) -> None:
    """The one cut line copytruncate can make: the copy caught a line half written. Its first
    half is in the copy, its second went to the file before the truncation and is gone."""
    log.write_bytes(pairs(range(3)))
    follower = stepper(log)
    follower.drain()
    cut = request(3)
    append(log, cut[:60])
    copytruncate(log, "audit.log.1", window=cut[60:] + response(3))
    append(log, pairs(range(4, 6)))
    follower.drain()
    follower.kill()

    assert sorted(store.events()["request_id"]) == sorted(ids(range(3)) | ids(range(4, 6)))
    letters = store.dead_letters()
    assert len(letters) == 1
    assert bytes(letters.iloc[0]["raw"]) == cut[:60]
    assert letters.iloc[0]["file"] == str(log.with_name("audit.log.1"))


@pytest.mark.usefixtures("no_idle_flush")
def test_copytruncate_without_a_copy_beside_the_file_warns_what_may_be_lost(
    log: Path,
    store: DuckDBStore,
    stepper: Callable[[Path], Stepper],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow_mod, "READ_BYTES", 1000)  # the follower is behind the writer:
    monkeypatch.setattr(follow_mod, "BATCH_EVENTS", 0)  # a step reads one read's worth
    log.write_bytes(pairs(range(10)))
    follower = stepper(log)
    follower.step()
    read_to, held = follower.followed.offset, follower.followed.rest
    assert held  # a line read in part
    unread = log.stat().st_size - read_to
    (log.parent.parent / "old").mkdir()
    shutil.copyfile(log, log.parent.parent / "old" / "audit.log.1")  # logrotate's olddir
    os.truncate(log, 0)
    append(log, pairs(range(10, 12)))
    with caplog.at_level("WARNING", logger=follow_mod.__name__):
        follower.drain()
    # The cut line began a request: it waits like one, and counts (here: as a dead letter,
    # for it does not decode) once the file has been quiet a while.
    monkeypatch.setattr(follow_mod, "IDLE_FLUSH_SECONDS", -1.0)
    follower.step()
    follower.kill()

    complete = {n for n in range(10) if len(pairs(range(n + 1))) <= read_to}
    assert complete  # some calls were read whole before the truncation
    stored = set(store.events()["request_id"])
    assert stored >= {rid(n) for n in complete} | ids(range(10, 12))
    assert stored <= ids(range(12))
    letters = store.dead_letters()  # the line cut by the truncation, kept as read
    assert [bytes(raw) for raw in letters["raw"]] == [held]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    message = warnings[0]
    assert str(log) in message
    assert f"{unread} bytes" in message
    assert "copytruncate" in message and "create" in message


# -- hostile input while following (issue 14 items 1, 2, 10) -------------------------------


def _step_all(log: Path, store: DuckDBStore, config: Config, writes: list[bytes]) -> IngestSummary:
    """Follow `log` by hand: each write appended, then polls until quiet."""
    summary = IngestSummary()
    followed = follow_mod.open_followed(log, store.checkpoint, None, {}, summary, None)
    try:
        for data in writes:
            append(log, data)
            for _ in range(50):
                if not follow_mod.step(followed, store, config, summary):
                    break
    finally:
        if followed.handle is not None:
            followed.handle.close()
    return summary


@pytest.mark.usefixtures("no_idle_flush")
def test_following_a_line_longer_than_the_cap_dead_letters_it_and_holds_no_more(
    log: Path, store: DuckDBStore
) -> None:
    """Was: a line without its newline grew in memory without bound."""
    config = Config.model_validate({"ingest": {"limits": {"max_line_bytes": 65536}}})
    long = b'{"type":"request","x":"' + b"A" * 300_000
    log.write_bytes(pairs(range(2)))
    pieces = [long[i : i + 50_000] for i in range(0, len(long), 50_000)]
    summary = _step_all(log, store, config, [*pieces, b'"}\n' + pairs(range(2, 5))])
    assert sorted(stored_ids(store)) == sorted(ids(range(5)))
    [letter] = store.dead_letters().to_dict(orient="records")
    assert "line longer than 65,536 bytes" in letter["reason"]
    assert (letter["line"], letter["offset"]) == (5, len(pairs(range(2))))
    assert summary.dead_records == 1


@pytest.mark.usefixtures("no_idle_flush")
def test_following_quarantines_implausible_times_and_deep_lines(
    log: Path, store: DuckDBStore
) -> None:
    """A far-future pair and a 100,000-deep line while following: dead letters, and the
    stream goes on (was: RecursionError, and the same crash on every restart)."""
    future = _entry_line(90, "request", "9999-12-31T00:00:00Z") + _entry_line(
        90, "response", "9999-12-31T00:00:00Z"
    )
    deep = b'{"type":"response","request":{"id":"deep"},"x":' + b"[" * 100_000
    deep += b"]" * 100_000 + b"}\n"
    log.write_bytes(pairs(range(3)))
    summary = _step_all(log, store, Config(), [future, deep, pairs(range(3, 6))])
    assert sorted(stored_ids(store)) == sorted(ids(range(6)))
    reasons = sorted(d.split(" - ")[0] for d in store.dead_letters()["reason"])
    assert reasons == [
        "implausible time: later than the ingest clock by more than "
        "ingest.time_window.max_future (0:15:00)",
        "not valid JSON: nested too deep (depth limit exceeded)",
    ]
    assert summary.quarantined == 1


def _entry_line(n: int, kind: str, when: str) -> bytes:
    entry = _entry(n, kind)
    entry["time"] = when
    return orjson.dumps(entry) + b"\n"
