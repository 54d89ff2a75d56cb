"""Format recognition (`pipeline.sources.formats`): a file's format from its first records."""

from __future__ import annotations

from pathlib import Path

from pipeline.sources import SOURCES
from pipeline.sources.formats import RECOGNIZE_WITHIN, RecognizingParser, recognize_format

JSONL = Path(__file__).resolve().parents[1] / "fixtures" / "vault" / "audit.jsonl"


def test_recognize_format() -> None:
    records = [(b"not json", 1, 0), (JSONL.read_bytes().split(b"\n")[0], 2, 9)]
    assert recognize_format(records) == "vault"
    assert recognize_format([(b'{"unrelated": 1}', 1, 0)]) is None
    assert recognize_format([]) is None


def test_an_unrecognised_file_is_dead_lettered_whole_naming_every_format() -> None:
    parser = RecognizingParser(None, {})
    stray = [(b'{"unrelated": 1}', n, n * 17) for n in range(1, RECOGNIZE_WITHIN + 1)]
    assert parser.feed(stray[:-1], "f").dead_records == 0  # held while it may yet be known
    out = parser.feed(stray[-1:], "f")
    assert out.dead_records == RECOGNIZE_WITHIN
    assert out.dead[0].reason == (
        f"unrecognised format (not any of: {', '.join(sorted(SOURCES))}); "
        "pass --format if it is one"
    )
