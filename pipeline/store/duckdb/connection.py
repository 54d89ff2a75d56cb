"""The DuckDB connection: opening a store file with errors that name the fix, one
transaction at a time (`retried` when two writers collide on the same rows), and the wall
clock for bookkeeping columns.

A store file is attached to an in-memory DuckDB instance (`ATTACH ... AS store`) rather
than opened as its main database, because only an attached database takes a row group size
(`ROW_GROUP_SIZE`). The connections of one process share that instance, as DuckDB's own
cache would share a file opened directly: the first `connect` attaches it, each gives a
connection of its own on it (threads each use theirs), and the last `disconnect` (or the
garbage collection of a connection never given back) closes it, which checkpoints the file
and lets other processes open it. While it is attached, DuckDB refuses any other opening of
the file in this process (`duckdb.connect(path)` included): go through `connect`.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from pipeline.errors import StoreError
from pipeline.paths import make_folder

# Rows per row group the store writes (DuckDB's default: 122,880). A checkpoint writes the
# newest, partly filled row group whole, and every commit waits for it: with the default,
# a stream's checkpoints stalled its writes for up to 0.3 s on a quiet core (every few
# seconds at 10,000 events a second), at this size for about 50 ms, with scans as fast
# (README "Service speed"). The cost is compression: less to compress per group makes a
# bulk ingest's file about a third larger (a stream's, checkpointed often, came out smaller).
ROW_GROUP_SIZE = 16_384


@dataclass
class _Attached:
    """A store file attached in this process, and how many connections use it."""

    root: duckdb.DuckDBPyConnection
    read_only: bool
    users: int = 0


_ATTACHED: dict[Path, _Attached] = {}
_ATTACHING = threading.RLock()  # re-entered by a release the garbage collector runs
# id(connection) -> its release, run by `disconnect` or by the garbage collector
_RELEASES: dict[int, weakref.finalize[..., duckdb.DuckDBPyConnection]] = {}


def connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection on the store file, in UTC; a writable store gets its folder made.
    Give it back with `disconnect`."""
    if read_only and not path.exists():
        raise StoreError(
            f"store {path} does not exist yet; run `secretwatch ingest PATH` first "
            "or point `store.path` in the config at an existing store"
        )
    if not read_only:
        try:
            make_folder(path.parent)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {path.parent}: {exc}") from exc
    key = path.resolve()
    with _ATTACHING:
        attached = _ATTACHED.get(key)
        if attached is None:
            attached = _ATTACHED[key] = _Attached(_attach(path, read_only), read_only)
        elif attached.read_only and not read_only:
            raise StoreError(
                f"store {path} is open read-only in this process; close it before opening "
                "it to write"
            )
        attached.users += 1  # first: a release run meanwhile cannot detach it
        con = attached.root.cursor()
        _RELEASES[id(con)] = weakref.finalize(con, _release, key, id(con))
    try:
        con.execute("USE store")
        con.execute("SET TimeZone = 'UTC'")
    except BaseException:
        disconnect(con)
        raise
    return con


def disconnect(con: duckdb.DuckDBPyConnection) -> None:
    """Close a connection `connect` gave; the last one of a file detaches it."""
    con.close()
    release = _RELEASES.get(id(con))
    if release is not None:
        release()  # once: it is then dead, and the collector does not run it again


def _release(key: Path, con_id: int) -> None:
    with _ATTACHING:
        _RELEASES.pop(con_id, None)
        attached = _ATTACHED.get(key)
        if attached is None:
            return
        attached.users -= 1
        if attached.users <= 0:
            del _ATTACHED[key]
            attached.root.close()


def _attach(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory instance with the store file attached as `store`, spilling next to it."""
    root = duckdb.connect(":memory:")
    options = "READ_ONLY" if read_only else f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}"
    try:
        try:
            root.execute(f"ATTACH {_literal(str(path))} AS store ({options})")
            root.execute(f"SET temp_directory = {_literal(str(path) + '.tmp')}")
        except duckdb.IOException as exc:
            raise StoreError(_explain_io(path, exc)) from exc
        except duckdb.Error as exc:
            raise StoreError(f"store {path} cannot be opened: {exc}") from exc
    except BaseException:
        root.close()
        raise
    return root


def _literal(text: str) -> str:
    """`text` as an SQL string literal (ATTACH takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, doing: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction; a failure rolls it back whole. A DuckDB error
    becomes a StoreError "`doing` failed: ..." (`doing` names the work and the store)."""
    con.execute("BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise StoreError(f"{doing} failed: {exc}") from exc
    except BaseException:
        con.execute("ROLLBACK")  # leave no open transaction behind, whatever failed
        raise


CONFLICT_RETRIES = 10  # a transaction that collided is run again up to this many times,
_FIRST_PAUSE, _MOST_PAUSE = 0.05, 1.0  # after waiting 0.05 s, doubled up to 1 s (~6 s in all)
_pause = time.sleep
Con = duckdb.DuckDBPyConnection
T = TypeVar("T")


def retried(con: duckdb.DuckDBPyConnection, doing: str, work: Callable[[Con], T]) -> T:
    """`work` in one transaction, run again while it collides with another connection's
    write to the same rows. DuckDB's concurrency is optimistic: the later of two writers
    of a row fails ("Conflict on update") and rolls back whole, so running it again once
    the other has committed is what both meant. An analyst's verdict and detection growing
    the same alert collide so: without this, the verdict was a 503, or detection's write
    failed and live detection started over."""
    pause = _FIRST_PAUSE
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            with transaction(con, doing) as tx:
                return work(tx)
        except StoreError as exc:
            if attempt == CONFLICT_RETRIES or not _collided(exc):
                raise
        _pause(pause)
        pause = min(pause * 2, _MOST_PAUSE)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _collided(exc: StoreError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, duckdb.TransactionException) and "Conflict" in str(cause)


def now() -> datetime:
    return datetime.now(UTC)


def _explain_io(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "lock" in text.lower():
        return (
            f"store {path} is in use by another process (a running `secretwatch ingest "
            f"--follow`?); stop it or use another store path. DuckDB said: {text}"
        )
    return f"store {path} cannot be opened: {text}"
