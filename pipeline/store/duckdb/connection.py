"""The DuckDB connection: opening a store file with errors that name the fix, one
transaction at a time, and the wall clock for bookkeeping columns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.errors import StoreError
from pipeline.paths import make_folder


def connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection on the store file, in UTC; a writable store gets its folder made."""
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
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise StoreError(_explain_io(path, exc)) from exc
    except duckdb.Error as exc:
        raise StoreError(f"store {path} cannot be opened: {exc}") from exc
    try:
        con.execute("SET TimeZone = 'UTC'")
    except BaseException:
        con.close()
        raise
    return con


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
