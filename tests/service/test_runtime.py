"""The serve runtime in-process: a bind failure leaves nothing running, the `file`
collector follows its paths and resumes after a restart, and the health/metrics app."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest
from waiting import wait_until

from pipeline.api.app import Probes, make_app
from pipeline.collectors.http import HttpServer
from pipeline.config import Config
from pipeline.errors import ConfigError
from pipeline.service.runtime import Service
from pipeline.store.duckdb import DuckDBStore

FIXTURE = Path(__file__).parents[1] / "fixtures" / "vault" / "audit.jsonl"
TOKEN = "t0ken-for-metrics"  # noqa: S105 - a test token


def config(tmp_path: Path, collectors: list[dict[str, object]], **extra: object) -> Config:
    return Config.model_validate(
        {
            "store": {"type": "duckdb", "path": str(tmp_path / "s.duckdb")},
            "collectors": collectors,
            "spool": {"path": str(tmp_path / "spool")},
            "ingest": {"follow_poll_seconds": 0.1},
            "sinks": [],
            **extra,
        }
    )


def event_ids(path: Path) -> list[str]:
    store = DuckDBStore(path, read_only=True)
    store.open()
    try:
        return list(store.events()["event_id"])
    finally:
        store.close()


def test_a_port_in_use_stops_what_started_and_closes_the_store(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    cfg = config(
        tmp_path,
        [
            {"type": "vault_socket", "name": "first", "listen": "tcp://127.0.0.1:0"},
            {"type": "vault_socket", "name": "second", "listen": f"tcp://127.0.0.1:{port}"},
        ],
    )
    service = Service(cfg)
    with pytest.raises(
        ConfigError, match=f"collector second: cannot listen on tcp://127.0.0.1:{port}"
    ):
        service.start()
    first = service.collectors[0]
    assert not first.listening
    address = getattr(first, "address")  # noqa: B009 - the vault collector's
    host, first_port = address[len("tcp://") :].rsplit(":", 1)
    with socket.socket() as again:  # the first collector's port is free again
        again.bind((host, int(first_port)))
    assert event_ids(tmp_path / "s.duckdb") == []  # the store was closed: it opens again
    taken.close()


def test_the_file_collector_follows_its_paths_and_resumes(tmp_path: Path) -> None:
    log = tmp_path / "vault.log"
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:20]))
    cfg = config(tmp_path, [{"type": "file", "paths": [str(log)], "format": "vault"}])
    service = Service(cfg)
    service.start()
    try:
        assert service.not_listening() == []
        wait_until(service.ready)
        wait_until(lambda: service.metrics.stored.labels("file", "vault")._value.get() == 10)
    finally:
        assert service.stop() == []
    assert not (tmp_path / "spool" / "file").exists()  # followed files need no spool
    with log.open("ab") as f:
        f.writelines(lines[20:])
    again = Service(cfg)
    again.start()
    try:
        wait_until(lambda: again.metrics.stored.labels("file", "vault")._value.get() == 7)
    finally:
        assert again.stop() == []
    ids = event_ids(tmp_path / "s.duckdb")
    assert len(ids) == len(set(ids)) == 17


def test_a_missing_followed_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"type": "file", "paths": [str(tmp_path / "nope.log")]}])
    with pytest.raises(ConfigError, match="collector file: .*nope.log: no such file"):
        Service(cfg).start()


def test_health_ready_and_metrics_over_http() -> None:
    down: list[str] = ["k8s"]
    ready: list[bool] = [False]
    probes = Probes(lambda: list(down), lambda: ready[0], lambda: b"secretwatch_ready 0.0\n")
    server = HttpServer("api", "127.0.0.1", 0, make_app(probes, token=TOKEN))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        answer = httpx.get(base + "/healthz")
        assert answer.status_code == 503
        assert answer.json()["not_listening"] == ["k8s"]
        assert httpx.get(base + "/readyz").status_code == 503
        down.clear()
        ready[0] = True
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").status_code == 200
        assert httpx.get(base + "/metrics").status_code == 401
        wrong = httpx.get(base + "/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = httpx.get(base + "/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        assert good.text == "secretwatch_ready 0.0\n"
    finally:
        server.stop()


def test_a_spool_past_warn_bytes_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(
        tmp_path,
        [{"type": "vault_socket", "listen": "tcp://127.0.0.1:0"}],
        spool={"path": str(tmp_path / "spool"), "warn_bytes": 65536},
    )
    service = Service(cfg)
    service.start()
    try:
        wait_until(service.ready)
        reader = service.reader
        assert reader is not None
        source = reader.sources[0]
        with caplog.at_level(logging.INFO, logger="pipeline.service.reader"):
            reader._depth(source, 70_000)
            reader._depth(source, 80_000)
            reader._depth(source, 10)
        behind = [r for r in caplog.records if "event=spool_behind" in r.getMessage()]
        assert len(behind) == 1
        assert "collector=vault_socket depth_bytes=70000" in behind[0].getMessage()
        assert any("event=spool_caught_up" in r.getMessage() for r in caplog.records)
    finally:
        service.stop()


@pytest.mark.parametrize("name", ["serve-vault.yaml", "serve-file.yaml"])
def test_the_example_configs_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.config import load_config

    monkeypatch.setenv("SECRETWATCH_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    cfg = load_config(Path(__file__).parents[2] / "config" / "examples" / name)
    assert cfg.collectors and cfg.api is not None


def test_a_reader_far_behind_small_segments_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servehelp import vault_pairs

    from pipeline.service.reader import Reader

    cfg = config(
        tmp_path,
        [{"type": "vault_socket", "listen": "tcp://127.0.0.1:0"}],
        spool={"path": str(tmp_path / "spool"), "segment_bytes": 65536},
    )
    start_reader = Reader.start
    monkeypatch.setattr(Reader, "start", lambda self: None)  # held back while the spool fills
    service = Service(cfg)
    service.start()
    try:
        lines = vault_pairs(400, tag=9)  # about 900 KB: many segments' worth
        address = getattr(service.collectors[0], "address")  # noqa: B009
        host, port = address[len("tcp://") :].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            for at in range(0, len(lines), 50):
                sock.sendall(b"\n".join(lines[at : at + 50]) + b"\n")
        wait_until(lambda: service.intakes[0].counts.records == len(lines))
        assert service.reader is not None
        start_reader(service.reader)
        stored = service.metrics.stored.labels("vault_socket", "vault")
        wait_until(lambda: stored._value.get() == 400)
        wait_until(lambda: len(list((tmp_path / "spool" / "vault_socket").iterdir())) == 1)
    finally:
        assert service.stop() == []
    ids = event_ids(tmp_path / "s.duckdb")
    assert len(ids) == len(set(ids)) == 400


def test_a_spool_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("a file where the spool folder should be")
    cfg = config(tmp_path, [{"type": "vault_socket", "listen": "tcp://127.0.0.1:0"}])
    with pytest.raises(ConfigError, match="collector vault_socket: cannot open its spool"):
        Service(cfg).start()
    assert event_ids(tmp_path / "s.duckdb") == []  # the store was closed again
