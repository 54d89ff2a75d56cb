"""The durable spool: group commit from many threads, rotation by rename, pruning behind
a checkpoint, depth, and a last line cut by a crash dropped on reopen."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from waiting import spooled, wait_until

from pipeline.collectors.spool import CURRENT, Spool
from pipeline.store.base import Checkpoint


def lines_in(spool: Spool) -> list[bytes]:
    return [line for p in spool.segments() for line in p.read_bytes().splitlines()]


def at(path: Path, offset: int) -> Checkpoint:
    st = path.stat()
    return Checkpoint(str(path), str(path), st.st_dev, st.st_ino, offset, 1, "")


def test_appends_from_many_threads_share_fsyncs_and_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "s")
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    threads, each = 16, 50
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        start.wait(10)
        for i in range(each):
            spool.append([b'{"t":%d,"i":%d}' % (n, i)])

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    got = lines_in(spool)
    assert sorted(got) == sorted(
        b'{"t":%d,"i":%d}' % (n, i) for n in range(threads) for i in range(each)
    )
    assert spool.lines == threads * each
    assert fsyncs <= threads * each  # never more than one per append ...
    assert spool._synced == spool._written  # ... and every byte covered by one
    spool.close()


def test_a_record_with_a_newline_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    with pytest.raises(ValueError, match="newline"):
        spool.append([b'{"a":1}\n{"b":2}'])
    spool.append([])
    assert lines_in(spool) == []


def test_rotation_prune_and_depth(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", segment_bytes=1 << 16)
    record = b'{"pad":"' + b"x" * 1000 + b'"}'
    first = spool.path.stat().st_ino
    for _ in range(70):  # past 64 KiB: rotated once
        spool.append([record])
    files = spool.segments()
    assert [p.name for p in files] == ["seg-0000000001.jsonl", CURRENT]
    assert files[0].stat().st_ino == first  # rotation by rename keeps the inode
    total = sum(p.stat().st_size for p in files)
    assert spool.depth(None) == total
    assert spool.prune(None) == 0
    # a checkpoint inside the rotated segment: nothing to delete, depth counts from it
    assert spool.prune(at(files[0], 5000)) == 0
    assert spool.depth(at(files[0], 5000)) == total - 5000
    # a checkpoint in current.jsonl: the segment before it goes
    spool.append([record])
    current = spool.path.stat().st_size
    assert spool.prune(at(spool.path, 1003)) == 1
    assert [p.name for p in spool.segments()] == [CURRENT]
    assert spool.depth(at(spool.path, 1003)) == current - 1003
    # an unknown inode (mid-rotation, or gone): nothing deleted, everything counted
    stranger = Checkpoint("k", "k", 0, 1, 10, 1, "")
    assert spool.prune(stranger) == 0
    assert spool.depth(stranger) == current
    spool.close()


def test_a_cut_last_line_is_dropped_on_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.append([b'{"a":1}', b'{"b":2}'])
    spool.close()
    with open(spool.path, "ab") as f:
        f.write(b'{"c":')  # a crash in the middle of a write
    again = Spool(tmp_path / "s")
    assert again.path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    again.append([b'{"d":4}'])
    assert lines_in(again) == [b'{"a":1}', b'{"b":2}', b'{"d":4}']
    again.close()
    only_cut = Spool(tmp_path / "t")
    only_cut.close()
    only_cut.path.write_bytes(b'{"never ended"')
    assert Spool(tmp_path / "t").path.read_bytes() == b""


def test_writes_waiting_on_an_fsync_are_covered_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "s")
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    spool._sync.acquire()  # an fsync in progress: both appends write, then wait
    workers = [threading.Thread(target=spool.append, args=([b'{"n":%d}' % n],)) for n in range(2)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 10
    while spool._written < 2 * len(b'{"n":0}\n'):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    spool._sync.release()
    for w in workers:
        w.join(10)
    assert len(fsyncs) == 1  # one fsync made both durable
    assert sorted(lines_in(spool)) == [b'{"n":0}', b'{"n":1}']
    spool.close()


def test_one_rotated_segment_at_a_time(tmp_path: Path) -> None:
    """While a rotated segment waits to be read, current.jsonl grows on: the follower
    finishes one rotated file before moving to the path, so a second would be skipped."""
    spool = Spool(tmp_path / "s", segment_bytes=1 << 16)
    record = b'{"pad":"' + b"x" * 1000 + b'"}'
    for _ in range(300):  # over four segments' worth
        spool.append([record])
    files = spool.segments()
    assert [p.name for p in files] == ["seg-0000000001.jsonl", CURRENT]
    assert files[1].stat().st_size > 3 * (1 << 16)
    first = len(files[0].read_bytes().splitlines())
    assert spool.prune(at(spool.path, 0)) == 1  # the reader moved on: now it may rotate
    spool.append([record])
    assert [p.name for p in spool.segments()] == ["seg-0000000001.jsonl", CURRENT]
    assert len(lines_in(spool)) == 301 - first  # only the pruned segment's lines are gone
    spool.close()


def test_appends_without_sync_are_fsynced_soon_and_on_close(tmp_path: Path) -> None:
    """The Vault socket's appends (no acknowledgement to give) do not wait for the disk: a
    background thread fsyncs them within moments, and rotation still happens."""
    spool = Spool(tmp_path / "spool", segment_bytes=4096)
    for i in range(50):
        spool.append([b'{"n":%d,"pad":"%s"}' % (i, b"x" * 200)], sync=False)
    wait_until(lambda: spool.unsynced == 0, timeout=10, what="background fsync")
    assert len(spool.segments()) == 2  # rotated by the background sync
    spool.append([b'{"last":1}'], sync=False)
    spool.close()
    assert spool.unsynced == 0
    assert spooled(Spool(tmp_path / "spool"))[-1] == b'{"last":1}'
