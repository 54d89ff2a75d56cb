"""`secretwatch serve` as a real subprocess: a Vault socket sender on 127.0.0.1, the
embedded store, a webhook receiver for alerts; SIGTERM and kill -9."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from servehelp import (
    SECRETWATCH,
    Served,
    Webhook,
    alive,
    fixture_lines,
    vault_pairs,
    write_config,
)
from waiting import wait_until

from pipeline.store.duckdb import DuckDBStore


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def stored(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(event ids, alert ids, dead letters' files) in the store of a stopped service."""
    store = DuckDBStore(folder / "serve.duckdb", read_only=True)
    store.open()
    try:
        events = list(store.events()["event_id"])
        alerts = list(store.alerts()["id"])
        dead = [str(f) for f in store.dead_letters()["file"]]
    finally:
        store.close()
    return events, alerts, dead


def test_socket_to_store_to_webhook_then_sigterm_stores_everything_spooled(
    tmp_path: Path, webhook: Webhook
) -> None:
    served = Served(write_config(tmp_path, webhook), tmp_path)
    try:
        assert served.get("/healthz").json() == {"status": "ok"}
        wait_until(lambda: served.get("/readyz").status_code == 200, what="ready")
        with served.vault() as sock:
            sock.sendall(b"\n".join(fixture_lines()) + b"\nnot json at all\n")
        # the fixture's root-token use raises an alert, delivered to the webhook
        wait_until(lambda: len(webhook.alert_ids()) >= 1, what="alert delivered")
        assert served.metric("secretwatch_collector_records_total", collector="vault_socket") == 36
        labels = {"collector": "vault_socket", "source": "vault"}
        wait_until(lambda: served.metric("secretwatch_events_stored_total", **labels) == 17)
        assert served.metric("secretwatch_events_dead_lettered_total", **labels) == 1
        assert served.metric("secretwatch_alerts_raised_total") >= 1
        wait_until(
            lambda: (
                served.metric("secretwatch_deliveries_total", sink="hook", outcome="delivered") >= 1
            ),
            what="delivery recorded",
        )
        assert served.metric("secretwatch_event_delay_seconds_count") == 17
        assert served.get("/metrics").headers["content-type"].startswith("text/plain")
        # a burst, then SIGTERM at once: what was spooled is stored before exit
        burst = vault_pairs(3000, tag=1)
        with served.vault() as sock:
            sock.sendall(b"\n".join(burst) + b"\n")
        wait_until(
            lambda: (
                served.metric("secretwatch_collector_records_total", collector="vault_socket")
                == 36 + len(burst)
            ),
            what="burst spooled",
        )
    finally:
        code = served.terminate()
    assert code == 0, served.stderr()
    events, alerts, dead = stored(tmp_path)
    assert len(events) == len(set(events)) == 17 + 3000
    assert len(alerts) == len(set(alerts)) >= 1
    assert set(webhook.alert_ids()) <= set(alerts)
    assert len(dead) == 1  # the garbage line, named by the spool file it came from
    assert dead[0].endswith("spool/vault_socket/current.jsonl")
    log = served.stderr()
    assert "event=stopped" in log
    assert "hmac-sha256" not in log


def test_kill_9_mid_stream_then_restart_stores_every_spooled_line_once(
    tmp_path: Path, webhook: Webhook
) -> None:
    config = write_config(tmp_path, webhook)
    served = Served(config, tmp_path)
    sent, broke = threading.Event(), threading.Event()

    def send() -> None:  # at full speed until the service dies under it (or 400k events)
        try:
            with served.vault() as sock:
                sock.sendall(b"\n".join(fixture_lines()) + b"\n")
                for chunk in range(1600):
                    sock.sendall(b"\n".join(vault_pairs(250, tag=2 + chunk)) + b"\n")
        except OSError:
            broke.set()
        sent.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        wait_until(
            lambda: (
                served.metric("secretwatch_collector_records_total", collector="vault_socket")
                > 20_000
            ),
            timeout=60,
            what="mid-stream",
        )
        orphans = served.children()
        assert orphans  # detection runs in a child process
    finally:
        served.kill()
    # The detection process never writes alone: its parent's death ends it.
    wait_until(lambda: not any(alive(pid) for pid in orphans), timeout=30, what="child ended")
    sender.join(30)
    assert sent.is_set()
    assert broke.is_set()  # killed mid-stream, not after the sender was done
    # What the collector spooled (fsynced before the kill) is the oracle: ingest a copy of
    # it into a fresh store the ordinary way.
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    shutil.copytree(tmp_path / "spool", oracle / "spool")
    spooled = sorted((oracle / "spool" / "vault_socket").glob("*.jsonl"))
    run = subprocess.run(
        [
            str(SECRETWATCH),
            "ingest",
            "--format",
            "vault",
            "--store",
            str(oracle / "o.duckdb"),
            *map(str, spooled),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    expected = DuckDBStore(oracle / "o.duckdb", read_only=True)
    expected.open()
    want = set(expected.events()["event_id"])
    expected.close()
    assert len(want) > 2_000

    again = Served(config, tmp_path)
    try:
        wait_until(lambda: again.get("/readyz").status_code == 200, timeout=60, what="caught up")
        wait_until(
            lambda: again.metric("secretwatch_spool_depth_bytes", collector="vault_socket") == 0,
            timeout=30,
            what="spool drained",
        )
    finally:
        assert again.terminate() == 0, again.stderr()
    events, alerts, _ = stored(tmp_path)
    assert len(events) == len(set(events))
    assert set(events) == want
    assert len(alerts) == len(set(alerts)) >= 1
    assert set(webhook.alert_ids()) <= set(alerts)


def test_a_port_in_use_exits_2_with_the_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path,
            None,
            collectors=[{"type": "vault_socket", "listen": f"tcp://127.0.0.1:{port}"}],
        )
        run = subprocess.run(
            [str(SECRETWATCH), "serve", "--config", str(config)],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 2
    assert f"cannot listen on tcp://127.0.0.1:{port}" in run.stderr.decode()
    assert run.stdout == b""  # nothing claimed to listen
