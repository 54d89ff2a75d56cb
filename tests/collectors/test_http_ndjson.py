"""The NDJSON-over-HTTP collector against real HTTP senders (httpx over 127.0.0.1): real
Vault 1.21.4 audit lines posted in pieces are stored exactly as the file they came from;
lines that are not JSON are dead letters naming the request and line, the rest goes on."""

from __future__ import annotations

import errno
import gzip
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from http_senders import FIXTURES, Running, client, ingest, running

from pipeline.collectors import http_ndjson
from pipeline.collectors.base import Intake
from pipeline.collectors.settings import HttpNdjson
from pipeline.collectors.spool import Spool
from pipeline.config import load_config

VAULT_LOG = FIXTURES / "vault" / "vault-1.21.4-dev" / "audit.log"  # 228 lines
CLOUDTRAIL = FIXTURES / "aws_cloudtrail" / "datadog__stratus-red-team"
TOKEN = "ndjson-test-token-0123456789"  # noqa: S105 - a test token
AUTH = {"authorization": f"Bearer {TOKEN}"}


def settings(fmt: str | None = None, max_body_bytes: int = 1 << 20) -> HttpNdjson:
    return HttpNdjson(
        type="http_ndjson",
        listen="http://127.0.0.1:0/ingest",
        token_env="NDJSON_TOKEN",  # noqa: S106 - the name of a variable
        format=fmt,  # type: ignore[arg-type]
        max_body_bytes=max_body_bytes,
    )


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NDJSON_TOKEN", TOKEN)


@pytest.fixture
def sink(tmp_path: Path) -> Running:
    with running(http_ndjson.make, settings(), tmp_path) as r:
        yield r  # type: ignore[misc]


def post(url: str, body: bytes, **headers: str) -> httpx.Response:
    return client().post(url, content=body, headers={**AUTH, **headers}, timeout=30)


def vault_lines() -> list[bytes]:
    return VAULT_LOG.read_bytes().splitlines()


@pytest.mark.parametrize("fmt", [None, "vault"])
def test_vault_lines_in_pieces_are_stored_as_the_file_is(tmp_path: Path, fmt: str | None) -> None:
    lines = vault_lines()
    with running(http_ndjson.make, settings(fmt), tmp_path) as sink:
        assert sink.collector.format == fmt
        for n, start in enumerate(range(0, len(lines), 50)):
            body = b"\n".join(lines[start : start + 50]) + b"\n"
            if n % 2:  # every other piece gzipped, as Fluent Bit's `compress gzip` sends
                answer = post(sink.url, gzip.compress(body), **{"content-encoding": "gzip"})
            else:
                answer = post(sink.url, body)
            assert answer.status_code == 200, answer.text
        assert sink.spooled() == lines  # byte for byte
    via_sink = ingest([sink.spool.path], fmt, tmp_path / "sink.duckdb")
    direct = ingest([VAULT_LOG], fmt, tmp_path / "direct.duckdb")
    assert via_sink.summary.formats == {"vault": 1}
    assert via_sink.summary.stored == direct.summary.stored > 50
    assert via_sink.events.equals(direct.events)


def test_cloudtrail_documents_one_per_line(sink: Running, tmp_path: Path) -> None:
    files = sorted(CLOUDTRAIL.glob("*.json"))
    body = b"\r\n".join(f.read_bytes().replace(b"\n", b"") for f in files) + b"\r\n  \r\n"
    answer = post(sink.url, body)
    assert answer.json() == {"accepted": len(files), "rejected": 0}
    via_sink = ingest([sink.spool.path], "aws", tmp_path / "sink.duckdb")
    direct = ingest(files, "aws", tmp_path / "direct.duckdb")
    assert via_sink.summary.stored == direct.summary.stored > 0
    assert via_sink.events.equals(direct.events)


def test_lines_that_are_not_json_are_dead_letters_naming_the_line(sink: Running) -> None:
    good = vault_lines()[:4]
    body = b"\n".join([good[0], b"not json at all", good[1], b"", good[2], b'{"cut": ', good[3]])
    answer = post(sink.url, body)
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 4, "rejected": 2}
    assert sink.spooled() == good
    dead = sink.intake.take_dead()
    assert [d.file.rsplit(", ", 1)[1] for d in dead] == ["line 2", "line 6"]
    assert all(
        d.file.startswith("collector http_ndjson: POST /ingest from 127.0.0.1:") for d in dead
    )
    assert all(d.reason.startswith("not JSON") for d in dead)
    assert dead[0].raw == b"not json at all"


def test_a_body_of_garbage_is_400_with_bounded_dead_letters(sink: Running) -> None:
    answer = post(sink.url, b"garbage\n" * 500)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("line 1: not JSON")
    dead = sink.intake.take_dead()
    assert len(dead) == http_ndjson.MAX_BAD_LINES + 1
    assert "400 more lines are not JSON" in dead[-1].reason
    assert sink.spooled() == []
    assert post(sink.url, vault_lines()[0]).status_code == 200  # and it goes on


def test_an_empty_body_spools_nothing(sink: Running) -> None:
    answer = post(sink.url, b"\n\n")
    assert answer.json() == {"accepted": 0, "rejected": 0}
    assert sink.spooled() == [] and sink.intake.counts.requests == 0


def test_without_the_token_401_and_nothing_spooled(sink: Running) -> None:
    body = b"\n".join(vault_lines()[:10])
    assert client().post(sink.url, content=body).status_code == 401
    assert post(sink.url, body, authorization="Bearer nope-0123456789").status_code == 401
    assert sink.spooled() == [] and sink.intake.counts.unauthorized == 2


def test_oversized_and_gzip_bomb_413(tmp_path: Path) -> None:
    with running(http_ndjson.make, settings(max_body_bytes=64 << 10), tmp_path) as sink:
        lines = vault_lines()
        body = b"\n".join(lines * 2)
        assert len(body) > 64 << 10
        assert post(sink.url, body).status_code == 413
        bomb = gzip.compress(b"\n" * (64 << 20), 9)
        answer = post(sink.url, bomb, **{"content-encoding": "gzip"})
        assert answer.status_code == 413 and "inflates past" in answer.json()["error"]
        assert sink.spooled() == []
        assert post(sink.url, b"\n".join(lines[:10])).status_code == 200


def test_concurrent_senders_all_spooled_exactly_once(sink: Running) -> None:
    lines = vault_lines()
    pieces = [lines[i : i + 7] for i in range(0, len(lines), 7)]

    def send(piece: list[bytes]) -> int:
        return post(sink.url, b"\n".join(piece)).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, pieces))
    assert codes == [200] * len(pieces)
    assert sorted(sink.spooled()) == sorted(lines)
    assert sink.intake.counts.requests == len(pieces)


def test_the_example_config_loads() -> None:
    config = load_config(FIXTURES.parents[1] / "config" / "examples" / "serve-http.yaml")
    [collector] = config.collectors
    assert isinstance(collector, HttpNdjson)
    assert collector.format == "vault" and collector.has_token


class FullDisk(Spool):
    """A spool on a full disk: every append fails as `os.write` would (ENOSPC)."""

    def append(self, lines: Sequence[bytes], sync: bool = True) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_spool_that_cannot_write_answers_503_and_acknowledges_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = FullDisk(tmp_path / "spool")
    intake = Intake("http_ndjson", spool)
    collector = http_ndjson.make(settings(), intake)
    collector.start()
    try:
        body = b"\n".join(vault_lines()[:4])
        answer = post(collector.url, body)  # type: ignore[attr-defined]
    finally:
        collector.stop()
        spool.close()
    assert answer.status_code == 503 and "retry" in answer.json()["error"]
    assert intake.counts.records == 0 and intake.take_dead() == []
    assert "No space left on device" in caplog.text
    assert b"hmac-sha256" in body and "hmac-sha256" not in caplog.text
