"""Hostile and broken input through the real ingest path (issue 14 items 1, 2, 3, 10, 11 and
the FIFO): nothing stops ingestion, blinds detection or goes uncounted.

Each test writes its input as an attacker or a careless operator would, runs it through the
same code as `secretwatch ingest` (or the CLI itself), and checks that the bad part became a
dead letter naming where it was and why, and that everything else was read.
"""

from __future__ import annotations

import gzip
import os
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import orjson
import pytest
from test_cli import CUT_OFF, ROOT_REQUEST, invoke, number, write_vault_history

from pipeline.ingest import Ingestor, IngestSummary
from pipeline.sources.framing import Cut, Limits, line_records
from pipeline.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
DEPTH = 100_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "s.duckdb")
    opened.open()
    try:
        yield opened
    finally:
        opened.close()


def accounted(summary: IngestSummary) -> None:
    """Records read = made events + skipped + dead-lettered, and every dead-lettered record
    (and quarantined event) is one dead letter."""
    assert summary.records == summary.consumed + summary.skipped_records + summary.dead_records
    assert summary.dead_lettered == summary.dead_records + summary.quarantined


def stored_dead_letters(path: Path) -> list[dict]:
    opened = DuckDBStore(path, read_only=True)
    opened.open()
    try:
        return opened.dead_letters().to_dict(orient="records")
    finally:
        opened.close()


def vault_pair(request_id: str, when: str, path: str = "secret/data/app/db") -> bytes:
    auth = {"display_name": "approle", "policies": ["app"], "metadata": {"role_name": "app"}}
    request = {
        "id": request_id,
        "operation": "read",
        "path": path,
        "mount_type": "kv",
        "mount_point": "secret/",
        "remote_address": "10.0.0.5",
    }
    req = {"type": "request", "time": when, "auth": auth, "request": request}
    resp = {**req, "type": "response"}
    return orjson.dumps(req) + b"\n" + orjson.dumps(resp) + b"\n"


def vault_log(n: int, start: datetime = datetime(2026, 3, 2, tzinfo=UTC)) -> bytes:
    """`n` answered reads, a minute apart."""
    return b"".join(
        vault_pair(f"req-{i:05d}", (start + timedelta(minutes=i)).isoformat()) for i in range(n)
    )


def deep(n: int = DEPTH) -> bytes:
    return b"[" * n + b"]" * n


# -- 1. depth ------------------------------------------------------------------------------

FORMAT_RECORDS = {
    # one valid record per format, as a single JSON line
    "aws": FIXTURES / "aws_cloudtrail",
    "gcp": FIXTURES / "gcp_audit",
    "azure": FIXTURES / "azure_keyvault",
    "k8s": FIXTURES / "k8s_audit",
}


def _good_lines(fmt: str) -> list[bytes]:
    """Records of the format's fixtures, one JSON object per line."""
    from pipeline.sources.base import unwrap
    from pipeline.sources.framing import file_records

    lines = []
    for path in sorted(FORMAT_RECORDS[fmt].rglob("*.json")):
        for chunk in file_records(path):
            assert not isinstance(chunk, Cut)
            for raw, _, _ in chunk:
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                lines += [orjson.dumps(item) for _, item in unwrap(doc) if isinstance(item, dict)]
        if len(lines) >= 4:
            break
    return lines[:4]


@pytest.mark.parametrize("fmt", ["aws", "gcp", "azure", "k8s"])
def test_a_record_nested_100000_deep_is_a_dead_letter_in_every_format(
    tmp_path: Path, store: DuckDBStore, fmt: str
) -> None:
    good = _good_lines(fmt)
    assert good, f"no {fmt} fixture records"
    bomb = b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","x":' + deep() + b"}"
    log = tmp_path / f"{fmt}.log"
    log.write_bytes(b"\n".join([good[0], bomb, *good[1:]]) + b"\n")
    for forced in (fmt, None):
        summary = Ingestor(store, forced).ingest([str(log)])
        accounted(summary)
        assert summary.dead_records == 1, summary
        assert summary.consumed + summary.skipped_records == len(good)
        [letter] = summary.dead_examples
        assert letter.line == 2


def test_a_vault_line_nested_100000_deep_is_a_dead_letter_not_a_crash(
    tmp_path: Path, store: DuckDBStore
) -> None:
    """Was: RecursionError out of msgspec, exit 1, nothing stored; under --follow the same
    crash on every restart. Both a request (read lazily, decoded when it counts alone) and
    a response carry the bomb."""
    request = (
        b'{"type":"request","time":"2026-03-02T00:00:00Z","request":{"id":"deep-1",'
        b'"path":"secret/data/a"},"zz":' + deep() + b"}"
    )
    response = (
        b'{"type":"response","time":"2026-03-02T00:00:00Z","request":{"id":"deep-2",'
        b'"path":"secret/data/a"},"zz":' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH + b"}"
    )
    log = tmp_path / "audit.log"
    log.write_bytes(vault_log(2) + request + b"\n" + response + b"\n")
    with log.open("ab") as out:
        out.write(vault_pair("req-after", "2026-03-02T01:00:00Z"))
    summary = Ingestor(store).ingest([str(log)])
    accounted(summary)
    assert (summary.events, summary.dead_records) == (3, 2)
    reasons = {d.reason for d in summary.dead_examples}
    assert reasons == {"not valid JSON: nested too deep (depth limit exceeded)"}
    assert sorted(store.dead_letters()["line"]) == [5, 6]


def test_deep_yaml_is_a_dead_letter(tmp_path: Path, store: DuckDBStore) -> None:
    (tmp_path / "rule.yml").write_bytes(b"Tests:\n  - Log: " + deep(20_000) + b"\n")
    (tmp_path / "audit.log").write_bytes(vault_log(2))
    summary = Ingestor(store).ingest([str(tmp_path)])
    accounted(summary)
    assert summary.events == 2
    assert "nested too deep" in summary.dead_examples[0].reason


# -- 2. implausible times ------------------------------------------------------------------


def _with_strays(history: Path) -> None:
    """Dates no real record has, early in the file: the year 9999, the year 1, and a
    record eight months after every other one of the file (within the clock's bounds)."""
    strays = (
        vault_pair("stray-9999", "9999-12-31T23:59:59Z")
        + vault_pair("stray-0001", "0001-01-01T00:00:00Z")
        + vault_pair("stray-later", "2026-11-20T03:00:00Z")
    )
    lines = history.read_bytes().splitlines(keepends=True)
    history.write_bytes(b"".join(lines[:20]) + strays + b"".join(lines[20:]))


@pytest.fixture
def history_with_strays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "history"
    folder.mkdir()
    write_vault_history(folder / "vault.log")
    _with_strays(folder / "vault.log")
    return tmp_path


def test_implausible_times_are_quarantined_and_detection_still_alerts(
    history_with_strays: Path,
) -> None:
    """Was: the 9999 record was stored, `detect` walked hourly batches towards it for
    minutes, moved its watermark decades ahead, and the root-token read after the cut-off
    raised nothing."""
    code, output = invoke("ingest", "history", "--store", "s.duckdb")
    assert code == 0, output
    assert number(output, "quarantined") == 3
    letters = stored_dead_letters(history_with_strays / "s.duckdb")
    reasons = sorted(letter["reason"].split(" - ")[0] for letter in letters)
    assert reasons == [
        "implausible time: earlier than the ingest clock by more than "
        "ingest.time_window.max_past (7320 days)",
        "implausible time: further than ingest.time_window.max_skew (30 days) from the "
        "other records of its file",
        "implausible time: later than the ingest clock by more than "
        "ingest.time_window.max_future (0:15:00)",
    ]
    assert all(letter["line"] > 20 and letter["file"].endswith("vault.log") for letter in letters)
    code, output = invoke("train", "--store", "s.duckdb", "--until", CUT_OFF.isoformat())
    assert code == 0, output
    code, output = invoke("detect", "--store", "s.duckdb")
    assert code == 0, output
    assert "1 alert raised" in output
    opened = DuckDBStore(history_with_strays / "s.duckdb", read_only=True)
    opened.open()
    try:
        [body] = opened.alerts()["body"]
    finally:
        opened.close()
    assert ROOT_REQUEST in orjson.loads(body)["evidence"]


def test_replay_quarantines_implausible_times_too(history_with_strays: Path) -> None:
    code, output = invoke(
        "replay", "-i", "history", "--train-until", CUT_OFF.isoformat(), "--alerts", "a.jsonl"
    )
    assert code == 0, output
    assert number(output, "quarantined") == 3
    [alert] = [orjson.loads(x) for x in (history_with_strays / "a.jsonl").read_bytes().splitlines()]
    assert alert["evidence"] == [ROOT_REQUEST]


def test_detect_never_walks_to_a_far_future_event_already_in_a_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before quarantine existed (or by hand) may hold a 9999 event:
    `detect` judges up to the clock, and its watermark stays with the real events."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "history").mkdir()
    write_vault_history(tmp_path / "history" / "vault.log")
    assert invoke("ingest", "history", "--store", "s.duckdb")[0] == 0
    assert invoke("train", "--store", "s.duckdb", "--until", CUT_OFF.isoformat())[0] == 0
    forged = tmp_path / "forged.log"
    forged.write_bytes(vault_pair("forged-9999", "9999-01-01T00:00:00Z"))
    opened = DuckDBStore(tmp_path / "s.duckdb")
    opened.open()
    try:  # written as a store of before the fix would have it: not through ingest
        from pipeline.sources.vault import VaultParser

        parser = VaultParser()
        rows = parser.feed([(line, 1, 0) for line in forged.read_bytes().splitlines()], "f")
        opened.write_batch(rows.rows, [])
    finally:
        opened.close()
    code, output = invoke("detect", "--store", "s.duckdb")
    assert code == 0, output
    assert "1 alert raised" in output
    opened = DuckDBStore(tmp_path / "s.duckdb")
    opened.open()
    try:
        meta = orjson.loads(opened.detection_state("meta") or b"{}")
    finally:
        opened.close()
    watermark = datetime.fromtimestamp(meta["watermark_us"] / 1e6, UTC)
    assert watermark < CUT_OFF + timedelta(days=2)


def test_ingest_clock_is_injected(tmp_path: Path, store: DuckDBStore) -> None:
    """The window is judged against the clock given, not the machine's."""
    log = tmp_path / "audit.log"
    log.write_bytes(vault_log(3, datetime(2030, 1, 1, tzinfo=UTC)))
    now = datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    summary = Ingestor(store, clock=lambda: now).ingest([str(log)])
    assert (summary.events, summary.quarantined) == (0, 3)
    later = datetime(2030, 1, 1, 1, tzinfo=UTC).timestamp()
    summary = Ingestor(store, clock=lambda: later).ingest([str(log)])
    assert (summary.events, summary.quarantined, summary.stored) == (3, 0, 3)


# -- 3. a few broken lines never make a JSON-lines file one document ------------------------


def _cut_top(lines: int = 4000) -> bytes:
    """Three lines cut inside a string value, then `lines` good ones (4,003 in all)."""
    cut = [
        b'{"type":"request","time":"2026-03-02T00:00:00Z","request":{"id":"cut-1","pa',
        b'{"type":"response","time":"2026-03-02T00:00:00Z","auth":{"display_name":"app',
        b'{"type":"request","time":"2026-03-02T00:00:01Z","request":{"id":"cut-3","path":"se',
    ]
    return b"\n".join(cut) + b"\n" + vault_log(lines // 2)


@pytest.mark.parametrize("forced", [None, "vault"])
@pytest.mark.parametrize("gz", [False, True])
def test_three_cut_lines_at_the_top_cost_three_lines(
    tmp_path: Path, store: DuckDBStore, forced: str | None, gz: bool
) -> None:
    """Was: 'records read 1', 0 events, and one dead letter clipped to 8 KB."""
    data = _cut_top()
    log = tmp_path / ("audit.log.gz" if gz else "audit.log")
    log.write_bytes(gzip.compress(data) if gz else data)
    summary = Ingestor(store, forced).ingest([str(log)])
    accounted(summary)
    assert (summary.records, summary.events, summary.dead_records) == (4003, 2000, 3)
    assert sorted(store.dead_letters()["line"]) == [1, 2, 3]


def test_pretty_printed_documents_with_a_broken_one_lose_that_one_only(
    tmp_path: Path, store: DuckDBStore
) -> None:
    docs = [orjson.loads(x) for x in vault_log(3).splitlines()]
    pretty = [orjson.dumps(d, option=orjson.OPT_INDENT_2) for d in docs]
    broken = pretty[2].replace(b'"time": "', b'"time": "2026-03-02T00:0\n', 1)
    log = tmp_path / "pretty.json"
    log.write_bytes(b"\n".join([*pretty[:2], broken, *pretty[3:]]) + b"\n")
    summary = Ingestor(store).ingest([str(log)])
    accounted(summary)
    assert summary.records - summary.dead_records == 5  # every document but the broken one
    assert summary.events == 3  # the broken request's response still makes its event


def test_json_lines_forced_into_document_framing_recover_after_a_cut_line() -> None:
    from pipeline.sources.documents import document_records

    data = _cut_top(10)
    records = document_records(data)
    assert [line for _, line, _ in records] == list(range(1, 14))


# -- 10. caps on lines and decompressed size -------------------------------------------------


def _config(tmp_path: Path, limits: str) -> Path:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"ingest:\n  limits: {{{limits}}}\n")
    return cfg


def test_a_line_over_the_cap_is_one_dead_letter_and_the_file_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, "max_line_bytes: 1048576")
    long = b'{"type":"request","time":"2026-03-02T00:00:00Z","x":"' + b"A" * (5 << 20) + b'"}'
    after = vault_pair("after-1", "2026-03-02T01:00:00Z")
    (tmp_path / "audit.log").write_bytes(vault_log(2) + long + b"\n" + after)
    code, output = invoke("ingest", "audit.log", "--store", "s.duckdb", "--config", str(cfg))
    assert code == 0, output
    assert number(output, "dead-lettered") == 1
    assert "line longer than 1,048,576 bytes" in output
    opened = DuckDBStore(tmp_path / "s.duckdb")
    opened.open()
    try:
        [letter] = opened.dead_letters().to_dict(orient="records")
        assert (letter["line"], letter["offset"]) == (5, len(vault_log(2)))
        assert len(letter["raw"]) < 10_000
    finally:
        opened.close()


def test_framing_memory_stays_bounded_by_the_line_cap() -> None:
    """A 64 MB line without a newline, read with a 1 MiB cap: framing never holds more than
    a few caps' worth (was: the whole line, 495 MB for 100 MB)."""
    stream = BytesIO(b"x" * (64 << 20) + b"\n" + vault_log(1))
    tracemalloc.start()
    try:
        chunks = list(line_records(stream, max_line=1 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(chunks[0], Cut) and chunks[0].line == 1
    assert [line for c in chunks[1:] if not isinstance(c, Cut) for _, line, _ in c] == [2, 3]
    assert peak < 8 << 20, f"framing peaked at {peak:,} bytes"


def test_a_decompression_bomb_is_cut_and_the_next_file_is_read(
    tmp_path: Path, store: DuckDBStore
) -> None:
    """200 MB of zeros without a newline in 200 KB of gzip (was: minutes, 700 MB+)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    with (tmp_path / "a-bomb.log.gz").open("wb") as out:
        for _ in range(200):
            out.write(packer.compress(zero))
        out.write(packer.flush())
    (tmp_path / "b-audit.log").write_bytes(vault_log(2))
    tracemalloc.start()
    try:
        summary = Ingestor(store).ingest([str(tmp_path)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    accounted(summary)
    assert summary.events == 2
    [letter] = summary.dead_examples
    assert letter.file.endswith("a-bomb.log.gz")
    assert "decompression bomb" in letter.reason
    assert peak < 256 << 20


def test_a_whole_document_file_over_the_cap_is_cut(tmp_path: Path, store: DuckDBStore) -> None:
    doc = orjson.dumps(
        {"Records": [{"eventID": str(i)} for i in range(20_000)]}, option=orjson.OPT_INDENT_2
    )
    (tmp_path / "trail.json").write_bytes(doc)
    summary = Ingestor(store, limits=Limits(max_document_bytes=64 << 10)).ingest([str(tmp_path)])
    accounted(summary)
    assert summary.dead_records == 1
    assert "larger than 65,536 bytes" in summary.dead_examples[0].reason


def test_limits_are_validated_with_the_key_named(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "max_line_bytes: 10")
    code, output = invoke("ingest", str(tmp_path), "--config", str(cfg))
    assert code != 0
    assert "ingest.limits.max_line_bytes" in " ".join(output.split())


# -- 11. accounting for document formats ----------------------------------------------------


def test_a_cloudtrail_object_counts_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: 'records read 1 ... dead-lettered 0' next to '2 dead letters'."""
    monkeypatch.chdir(tmp_path)
    good = {
        "eventVersion": "1.08",
        "eventID": "good-1",
        "eventTime": "2026-03-02T00:00:00Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "10.0.0.1",
        "recipientAccountId": "1",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::1:assumed-role/app/s",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::1:role/app"}},
        },
        "requestParameters": {"secretId": "arn:aws:secretsmanager:eu-west-1:1:secret:db-AbCdEf"},
    }
    records = [good, {**good, "eventTime": 7}, {**good, "eventID": "good-2"}, "not an object"]
    (tmp_path / "trail.json").write_bytes(orjson.dumps({"Records": records}))
    code, output = invoke("ingest", "trail.json", "--store", "s.duckdb")
    assert code == 0, output
    assert number(output, "records read") == 4
    assert number(output, "made events") == 2
    assert number(output, "dead-lettered") == 2
    assert "2 dead letters" in " ".join(output.split())
    assert len(stored_dead_letters(tmp_path / "s.duckdb")) == 2


# -- low: a FIFO (process substitution) as input --------------------------------------------


def test_a_fifo_is_read_like_a_file(tmp_path: Path, store: DuckDBStore) -> None:
    """Was: a traceback from `tell()` on a pipe."""
    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)
    data = vault_log(50)

    def write() -> None:
        with fifo.open("wb") as out:
            out.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    summary = Ingestor(store, on_advance=lambda n: None).ingest([str(fifo)])
    writer.join(timeout=30)
    assert not writer.is_alive()
    accounted(summary)
    assert (summary.events, summary.dead_records) == (50, 0)


# -- low: duplicate JSON keys ----------------------------------------------------------------


def test_a_repeated_json_key_is_noted_on_the_event(tmp_path: Path, store: DuckDBStore) -> None:
    """Was: silently the last value. The event says so; records without repeats do not."""
    record = (
        b'{"eventVersion":"1.08","eventID":"dup-1","eventTime":"2026-03-02T00:00:00Z",'
        b'"eventSource":"secretsmanager.amazonaws.com","eventName":"DescribeSecret",'
        b'"eventName":"GetSecretValue","awsRegion":"eu-west-1","recipientAccountId":"1",'
        b'"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},'
        b'"requestParameters":{"secretId":"arn:aws:secretsmanager:eu-west-1:1:secret:a-AbCdEf",'
        b'"secretId":"arn:aws:secretsmanager:eu-west-1:1:secret:b-AbCdEf"}}'
    )
    clean = (
        record.replace(b'"eventName":"DescribeSecret",', b"")
        .replace(b'"secretId":"arn:aws:secretsmanager:eu-west-1:1:secret:a-AbCdEf",', b"")
        .replace(b"dup-1", b"clean-1")
    )
    (tmp_path / "trail.json").write_bytes(b'{"Records":[' + record + b"," + clean + b"]}")
    summary = Ingestor(store).ingest([str(tmp_path)])
    assert summary.events == 2
    frame = store.events()
    notes = dict(zip(frame["event_id"], frame["note"].fillna(""), strict=True))
    assert "repeats a JSON key" in notes["dup-1"]
    assert "repeats" not in notes["clean-1"]
    [row] = store.events()[store.events()["event_id"] == "dup-1"].to_dict(orient="records")
    assert row["operation"] == "GetSecretValue" and row["secret"].endswith(":secret:b")


def test_a_parser_error_quoting_a_value_keeps_no_value_in_its_reason() -> None:
    """An exception raised inside a parser may quote what it choked on."""
    from pipeline.sources.base import DocumentParser

    def choke(doc: dict, backend: str | None) -> list:
        raise ValueError(f"invalid literal for int() with base 10: {doc['v']!r}")

    parser = DocumentParser("aws", choke)
    result = parser.feed([(b'{"v": "CANARY-in-a-reason"}', 1, 0)], "x.json")
    [letter] = result.dead
    assert "CANARY" not in letter.reason and "ValueError" in letter.reason
