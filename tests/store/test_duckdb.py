"""DuckDB-specific store behaviour: schema versions, opening errors, locking across
processes. The backend-independent contract is in test_store_contract.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import pytest

from pipeline.errors import StoreError
from pipeline.record import EventRow, to_micros
from pipeline.store import STORES
from pipeline.store.duckdb import SCHEMA_VERSION, DuckDBStore
from pipeline.store.duckdb.connection import ROW_GROUP_SIZE
from pipeline.store.rows import rows_to_arrow

HOLDER = textwrap.dedent(
    """
    import sys, threading, os
    from pipeline.store.duckdb import DuckDBStore
    store = DuckDBStore(sys.argv[1])
    store.open()
    print("ready", flush=True)
    threading.Timer(600, os._exit, [3]).start()  # a stuck test (EOF ends it if we die)
    sys.stdin.readline()  # hold the store until the test closes our stdin
    store.close()
    os._exit(0)
    """
)


def _row(event_id: str) -> EventRow:
    return EventRow(
        event_id,
        to_micros("2026-05-01T03:00:00Z"),
        "vault",
        "vault",
        "a",
        "service",
        "secret/x",
        "read",
        "read",
        "success",
        None,
        None,
        None,
        None,
        None,
    )


def test_registered_as_default() -> None:
    assert STORES["duckdb"] is DuckDBStore


def test_schema_version_is_current(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        assert store.schema_version() == SCHEMA_VERSION >= 1
    with DuckDBStore(tmp_path / "s.duckdb", read_only=True) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "s.duckdb"
    with DuckDBStore(path) as store:
        store.write_batch([_row("a")])
    assert path.is_file()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    DuckDBStore(path).open()  # create, then pretend a newer secretwatch migrated it
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 4)]
        )
    finally:
        con.close()
    for read_only in (False, True):
        with pytest.raises(StoreError) as info:
            DuckDBStore(path, read_only=read_only).open()
        message = str(info.value)
        assert str(SCHEMA_VERSION + 4) in message
        assert f"({SCHEMA_VERSION})" in message
        assert "upgrade secretwatch" in message
        assert str(path) in message


def test_read_only_missing_store_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "s.duckdb"
    with pytest.raises(StoreError) as info:
        DuckDBStore(path, read_only=True).open()
    message = str(info.value)
    assert str(path) in message
    assert "does not exist" in message
    assert "secretwatch ingest" in message
    assert not path.parent.exists()  # a reader never creates anything


def test_read_only_unmigrated_store_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()  # a DuckDB file without our schema
    with pytest.raises(StoreError, match="schema version 0"):
        DuckDBStore(path, read_only=True).open()
    with DuckDBStore(path) as store:  # a writer migrates it
        assert store.schema_version() == SCHEMA_VERSION


def test_not_a_database_file(tmp_path: Path) -> None:
    path = tmp_path / "text.duckdb"
    path.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError) as info:
        DuckDBStore(path).open()
    assert str(path) in str(info.value)


def test_store_folder_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the store folder"):
        DuckDBStore(blocker / "s.duckdb").open()


def test_store_in_use_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        for read_only in (False, True):
            with pytest.raises(StoreError) as info:
                DuckDBStore(path, read_only=read_only).open()
            message = str(info.value)
            assert "in use" in message
            assert str(path) in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(timeout=30)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            for stream in (holder.stdout, holder.stderr):
                if stream is not None:
                    stream.close()
    assert holder.returncode == 0
    with DuckDBStore(path) as store:  # free again once the holder is gone
        assert store.count() == 0


def test_rows_to_arrow_shape() -> None:
    table = rows_to_arrow([_row("a"), _row("b")])
    assert table.num_rows == 2
    assert table.column_names[:2] == ["event_id", "ts"]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert rows_to_arrow([]).num_rows == 0


def test_a_version_1_store_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    from pipeline.store.duckdb import MIGRATIONS

    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO checkpoints VALUES ('k', '/var/log/a.log', 1, 2, 300, 7, now())")
    con.close()

    store = DuckDBStore(path)
    store.open()
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        saved = store.checkpoint("k")
        assert saved is not None and (saved.offset, saved.line, saved.fingerprint) == (300, 7, None)
    finally:
        store.close()


def _old_store(path: Path, version: int) -> None:
    """A store as secretwatch left it at schema `version`."""
    from pipeline.store.duckdb import MIGRATIONS

    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for statements in MIGRATIONS[:version]:
            for statement in statements:
                con.execute(statement)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(version)])
        batch = rows_to_arrow([_row("old")])  # noqa: F841 - read by name in the SQL below
        # `actor` came with version 5: older stores hold the columns before it
        if version < 5:
            con.execute("INSERT INTO events SELECT * EXCLUDE (actor) FROM batch")
        else:
            con.execute("INSERT INTO events SELECT * FROM batch")
        con.execute(
            "INSERT INTO checkpoints VALUES ('k', '/var/log/a.log', 1, 2, 300, 7, now(), '9:ab')"
        )
    finally:
        con.close()


def test_a_version_2_store_is_migrated_to_hold_detection(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 5
    path = tmp_path / "v2.duckdb"
    _old_store(path, 2)
    with DuckDBStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert list(store.events()["event_id"]) == ["old"]  # the data is kept
        saved = store.checkpoint("k")
        assert saved is not None and (saved.offset, saved.fingerprint) == (300, "9:ab")
        assert store.baselines() == []
        assert store.detection_state("meta") is None
        assert len(store.alerts()) == 0
        store.save_detection([("a", b"{}")], {"meta": b"m"}, [], version=1)
    with DuckDBStore(path, read_only=True) as store:  # migrated once, readable from then on
        assert store.schema_version() == SCHEMA_VERSION
        assert store.baselines() == [("a", b"{}")]
        assert store.detection_state("meta") == b"m"


def test_a_version_3_store_gets_the_outbox_and_keeps_its_alerts(tmp_path: Path) -> None:
    """Alerts raised before the outbox existed become revision 1, pending for every sink."""
    from datetime import UTC, datetime

    from pipeline.store.duckdb import MIGRATIONS

    path = tmp_path / "v3.duckdb"
    _old_store(path, 3)
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "INSERT INTO alerts VALUES ('swa-old', now(), 'root', 'critical', 'root_token', 1.0,"
            " now(), now(), 'root was used.', 1, 1, '{\"id\": \"swa-old\"}', now(), now())"
        )
    finally:
        con.close()
    assert len(MIGRATIONS) == 5
    with DuckDBStore(path) as store:
        assert store.schema_version() == 5
        row = store.alerts().iloc[0]
        assert (row["id"], row["revision"], row["repeats"]) == ("swa-old", 1, 0)
        assert row["resolution"] is None
        pending = store.pending_deliveries("file", 10, datetime.now(UTC))
        assert [(p.alert_id, p.revision, p.state) for p in pending] == [("swa-old", 1, None)]


def test_a_version_4_store_gets_the_actor_column_and_keeps_its_events(tmp_path: Path) -> None:
    """Events stored before `actor` existed read back with none; new ones keep theirs."""
    path = tmp_path / "v4.duckdb"
    _old_store(path, 4)
    with DuckDBStore(path) as store:
        assert store.schema_version() == 5
        store.write_batch([_row("new")._replace(actor="alice@example.com")])
        events = store.events().set_index("event_id")
    assert pd.isna(events.loc["old", "actor"])
    assert events.loc["new", "actor"] == "alice@example.com"


def test_a_version_2_store_is_not_migrated_by_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    _old_store(path, 2)
    with pytest.raises(StoreError) as info:
        DuckDBStore(path, read_only=True).open()
    message = str(info.value)
    assert "schema version 2" in message
    assert "writable" in message
    assert str(path) in message
    con = duckdb.connect(str(path), read_only=True)
    try:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        tables = {name for (name,) in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()
    assert version == ("2",)
    assert "alerts" not in tables


def test_a_refused_open_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    _old_store(path, 2)
    refused = DuckDBStore(path, read_only=True)
    with pytest.raises(StoreError):
        refused.open()
    with DuckDBStore(path) as store:  # `refused` still exists, as in a long-lived process
        assert store.schema_version() == SCHEMA_VERSION


def _rows(count: int, start: int = 0) -> list[EventRow]:
    first = to_micros("2026-05-01T03:00:00Z")
    return [
        _row(f"e{n}")._replace(ts_us=first + n * 1_000, identity=f"svc-{n % 7}")
        for n in range(start, start + count)
    ]


def _row_groups(path: Path) -> list[int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        sizes = con.execute(
            """SELECT max("count") FROM pragma_storage_info('events')
               GROUP BY row_group_id ORDER BY row_group_id"""
        ).fetchall()
    finally:
        con.close()
    return [int(n) for (n,) in sizes]


def test_events_are_kept_in_small_row_groups(tmp_path: Path) -> None:
    """A checkpoint writes the newest row group whole and every commit waits for it: at
    DuckDB's 122,880 rows a group, a stream's writes stalled for up to 0.3 s every few
    seconds. The store writes groups of `ROW_GROUP_SIZE` rows."""
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as store:
        for start in range(0, 40_000, 5_000):
            store.write_batch(_rows(5_000, start), [], [])
        assert store.count() == 40_000
    assert _row_groups(path) == [ROW_GROUP_SIZE, ROW_GROUP_SIZE, 40_000 - 2 * ROW_GROUP_SIZE]


def test_stores_on_one_file_share_it_and_the_last_close_lets_it_go(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    first, second = DuckDBStore(path), DuckDBStore(path, read_only=True)
    first.open()
    second.open()  # a reader beside the writer in one process (the service's API)
    first.write_batch(_rows(3), [], [])
    first.close()
    assert second.count() == 3  # still open: the file stays attached for it
    second.close()
    with DuckDBStore(path, read_only=True) as reader:  # attached again, read-only
        with pytest.raises(StoreError, match="open read-only in this process"):
            DuckDBStore(path).open()
        assert reader.count() == 3
    with DuckDBStore(path) as store:  # and again, writable
        assert store.count() == 3
    holder = subprocess.run(  # another process can open it: nothing here holds it
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert holder.returncode == 0, holder.stderr


def test_a_store_dropped_without_closing_lets_the_file_go(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "s.duckdb"
    store = DuckDBStore(path)
    store.open()
    store.write_batch(_rows(2), [], [])
    del store
    gc.collect()
    con = duckdb.connect(str(path))  # a plain open in this process: refused if attached
    try:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (2,)
    finally:
        con.close()


def test_a_verdict_waits_for_detection_growing_the_same_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's concurrency is optimistic: the later writer of a row fails. Before, an
    analyst's verdict given while detection's transaction grew the alert undid the growth
    (an UPDATE ... RETURNING is not checked for conflicts), or, counted, was a 503."""
    from test_store_contract import NOW, _alert

    from pipeline.store.duckdb import connection, detection

    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as analyst, DuckDBStore(path) as detecting:
        alert = _alert("root")
        analyst.save_detection([], {}, [alert], version=1)
        grown = _alert("root", evidence=("e1", "e2"))
        assert grown["id"] == alert["id"]
        detecting.con.execute("BEGIN")
        detection.save(detecting.con, [], {}, [grown], 1, False)  # not committed yet
        waited: list[float] = []

        def pause(seconds: float) -> None:
            if not waited:
                detecting.con.execute("COMMIT")  # detection is done meanwhile
            waited.append(seconds)

        monkeypatch.setattr(connection, "_pause", pause)
        analyst.resolve_alert(alert["id"], "false_positive", "ana", "planned", NOW)
        if not waited:
            detecting.con.execute("COMMIT")
        row = analyst.alerts().iloc[0]
        assert row["resolution"] == "false_positive"
        assert orjson.loads(row["body"])["evidence"] == ["e1", "e2"]  # both writes stand
        assert waited == [0.05]  # the verdict collided once, waited, then landed


def test_detection_writes_again_after_a_verdict_landed_during_its_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, detection's write failed ("Conflict on update") and live detection stopped
    and started over; now its transaction runs again, and the verdict stays."""
    from test_store_contract import NOW, _alert

    from pipeline.store.duckdb import connection, detection

    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as detecting, DuckDBStore(path) as analyst:
        alert = _alert("root")
        detecting.save_detection([], {}, [alert], version=1)
        save, attempts = detection.save, []

        def save_while_an_analyst_resolves(con: duckdb.DuckDBPyConnection, *args: Any) -> None:
            con.execute("SELECT count(*) FROM alerts").fetchall()  # the transaction is underway
            if not attempts:
                analyst.resolve_alert(alert["id"], "true_positive", "ana", None, NOW)
            attempts.append(1)
            save(con, *args)

        monkeypatch.setattr(detection, "save", save_while_an_analyst_resolves)
        monkeypatch.setattr(connection, "_pause", lambda seconds: None)
        detecting.save_detection([], {}, [_alert("root", evidence=("e1", "e3"))], version=2)
        assert len(attempts) == 2
        row = detecting.alerts().iloc[0]
        assert row["resolution"] == "true_positive"
        assert orjson.loads(row["body"])["evidence"] == ["e1", "e3"]
