"""The ingest hot path's shortcuts agree with the slow paths they skip: event times read per
second, Vault entries whose `type` comes last, lines framed across read chunks, and batches
that cannot hold an implausible time."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.record import EventRow, to_micros
from pipeline.sources.base import FeedResult, Record
from pipeline.sources.framing import Cut, line_records, split_lines
from pipeline.sources.vault import VaultParser, event_micros
from pipeline.timewindow import TimeWindow, quarantine

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "vault" / "vault-1.21.4-dev" / "audit.log"


def _either(fn: Callable[[str], int], text: str) -> object:
    try:
        return fn(text)
    except ParseError as exc:
        return f"ParseError: {exc}"


go_times = st.builds(
    lambda y, mo, d, h, mi, s, digits: (
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
        + (f".{digits}" if digits else "")
        + "Z"
    ),
    st.integers(1, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.text("0123456789", max_size=11),
)
odd_times = st.text(st.sampled_from("0123456789-T:.Z+ z٣"), min_size=15, max_size=32)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(go_times, odd_times), min_size=1, max_size=6))
def test_event_micros_is_to_micros(texts: list[str]) -> None:
    """The per-second cache answers what `to_micros` answers, error or value, whatever was
    cached before (texts of one second with other fractions, odd suffixes)."""
    for text in texts + [t[:19] + "Z" for t in texts] + [t[:19] + ".5Z" for t in texts]:
        assert _either(event_micros, text) == _either(to_micros, text), text


def _type_first(line: bytes) -> bytes:
    doc = orjson.loads(line)
    return orjson.dumps({"type": doc.pop("type"), "time": doc.pop("time", None), **doc})


def _parse(lines: list[bytes]) -> FeedResult:
    parser = VaultParser()
    records: list[Record] = [(line, n + 1, n * 10_000) for n, line in enumerate(lines)]
    out = parser.feed(records, "audit.log")
    out.extend(parser.flush("audit.log"))
    return out


def test_type_last_parses_as_type_first() -> None:
    """Vault 1.21.4 writes `type` last: found at the end of the line, its entries make the
    very events they make when `type` comes first."""
    lines = REAL.read_bytes().splitlines()
    assert lines[1].endswith(b'"type":"response"}')
    last, first = _parse(lines), _parse([_type_first(line) for line in lines])
    assert last.rows == first.rows and last.where == first.where
    assert (last.consumed, last.dead_records) == (first.consumed, first.dead_records)


def test_bad_response_with_type_last_names_the_same_field() -> None:
    """A response read whole at once (its type at the end) and found bad is dead-lettered
    with the reason the pairing fields' decode gives, as when it was decoded in two steps."""
    pad = b'"display_name":"' + b"x" * 120 + b'",'  # `type` past where it is looked for first
    line = (
        b'{"auth":{' + pad + b'"policies":5},"request":{"id":"r1","path":7},'
        b'"time":"2026-05-01T00:00:00Z","type":"response"}'
    )
    out = _parse([line])
    assert out.dead_records == 1
    assert out.dead[0].reason == (
        "not a Vault audit entry: Expected `str | null`, got `int` - at `$.request.path`"
    )
    good_request = (
        b'{"auth":{' + pad + b'"policies":5},"request":{"id":"r1"},"time":"2026-05-01T00:00:00Z"'
    )
    out = _parse([good_request + b',"type":"response"}'])
    assert out.dead[0].reason.endswith("at `$.auth.policies`")


def _vault_pair(extra: dict[str, object], rid: str) -> tuple[bytes, bytes]:
    """A request and its response as Vault writes them: keys sorted, `type` last."""
    request = {"client_token": "hmac-sha256:ab", "id": rid, "operation": "update",
               "path": "secret/data/app", **extra}  # fmt: skip
    auth = {"accessor": "hmac-sha256:cd", "metadata": {"role_name": "app"}}
    time = "2026-05-01T00:00:00.5Z"
    head = {"auth": auth, "request": request, "time": time}
    opts = orjson.OPT_SORT_KEYS
    return (
        orjson.dumps({**head, "type": "request"}, option=opts),
        orjson.dumps({**head, "response": {"data": {}}, "type": "response"}, option=opts),
    )


MISLEADING = "0a1b2c3d-0000-4000-8000-00000000beef"  # a request id's shape, not its place
REAL_ID = "11111111-2222-4333-8444-555555555555"


def test_an_id_misread_off_a_request_line_never_makes_a_second_event() -> None:
    """Requests are paired by an id read off the line (Vault's last `,"id":"`); when a line
    not written by Vault holds a UUID-shaped `id` there instead, the pair still makes one
    event, and an unanswered request counts once, under its own id."""
    request, response = _vault_pair({"zeta": {"a": 1, "id": MISLEADING}}, REAL_ID)
    assert request.index(MISLEADING.encode()) > request.index(REAL_ID.encode())
    paired = _parse([request, response])
    assert [r.event_id for r in paired.rows] == [REAL_ID]
    assert (paired.consumed, paired.dead_records) == (2, 0)
    alone = _parse([request])
    assert [r.event_id for r in alone.rows] == [REAL_ID]
    assert alone.rows[0].note is not None  # counted alone, as the note says
    # Vault's own order, `data` (and its ids) before the request's id: read right
    plain, response = _vault_pair({"data": {"id": MISLEADING}}, REAL_ID)
    assert [r.event_id for r in _parse([plain, response]).rows] == [REAL_ID]


lines_st = st.lists(
    st.one_of(
        st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
        st.sampled_from([b"", b"  ", b"\r", b'{"a":1}\r', b"\t\r"]),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(lines_st, st.booleans(), st.integers(1, 64))
def test_line_records_across_chunks_equal_one_split(
    lines: list[bytes], trailing: bool, chunk: int
) -> None:
    """Records, line numbers and offsets do not depend on where reads cut the stream."""
    data = b"\n".join(lines) + (b"\n" if trailing else b"")
    whole, tail, line, offset = split_lines(data, 1, 0)
    if tail.strip():
        whole.append((tail.rstrip(b"\r"), line, offset))
    chunks = list(line_records(io.BytesIO(data), chunk_bytes=chunk))
    chunked = [r for c in chunks if not isinstance(c, Cut) for r in c]
    assert chunked == whole


def _rows(times: list[int]) -> FeedResult:
    row = EventRow("e", 0, "vault", "vault", "i", "service", None, "read", "read", "success",
                   None, None, None, None, None)  # fmt: skip
    rows = [row._replace(event_id=f"e{n}", ts_us=t) for n, t in enumerate(times)]
    return FeedResult(rows=rows, where=[(n + 1, n) for n in range(len(rows))])


TEN = list(range(-20, -10))
MONTH = 30 * 86_400


@pytest.mark.parametrize(
    ("offsets_s", "kept"),
    [
        (TEN, 10),  # in bounds and narrow: the early return
        ([-20 - MONTH, *TEN], 11),  # a gap of exactly max_skew splits nothing
        ([-21 - MONTH, *TEN], 10),  # a second more: a stray
        ([-(20 * 366 + 1) * 86_400, -2, -1], 2),  # before max_past
        ([-2, -1, 901], 2),  # after max_future
        ([-2, -1, 900], 3),  # exactly max_future
    ],
)
def test_quarantine_edges(offsets_s: list[int], kept: int) -> None:
    """Quarantine keeps and drops the same events whether or not it takes its early return."""
    now = 1_800_000_000_000_000
    result = _rows([now + s * 1_000_000 for s in offsets_s])
    quarantine(result, "f", "vault", TimeWindow(), now)
    assert len(result.rows) == kept
    assert len(result.dead) == len(offsets_s) - kept == result.quarantined
