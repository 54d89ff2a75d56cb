"""The door's dead letters on disk: durable when `append` returns, read back by a restarted
service, kept through a take that was never stored, and never lost to a take in between."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.collectors.base import Intake
from pipeline.collectors.rejected import LETTERS, Rejected
from pipeline.collectors.spool import Spool
from pipeline.sources.base import DeadLetter

WHERE = "collector c: POST /x from 127.0.0.1:5"
LETTER = DeadLetter(WHERE, 0, 0, "not JSON", b"\x00\xff{", "vault")


def test_a_letter_is_read_back_whole_after_a_restart(tmp_path: Path) -> None:
    Rejected(tmp_path).append(LETTER)
    again = Rejected(tmp_path)  # a new process: nothing in memory
    assert again.waiting()
    assert again.take() == [LETTER]


def test_letters_taken_but_not_stored_are_taken_again(tmp_path: Path) -> None:
    """A service killed between taking and storing stores them on its next start."""
    first = Rejected(tmp_path)
    first.append(LETTER)
    assert first.take() == [LETTER]
    later = DeadLetter("collector c: queue", 0, 0, "object gone", b"", "aws")
    first.append(later)  # while the taken ones are being stored
    again = Rejected(tmp_path)
    assert again.take() == [LETTER]  # the taken file first, whole
    again.taken()
    assert again.take() == [later]  # then what came meanwhile, not lost
    again.taken()
    assert not again.waiting() and again.take() == []


def test_a_line_cut_by_a_crash_is_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Rejected(tmp_path).append(LETTER)
    with (tmp_path / LETTERS).open("ab") as f:
        f.write(b'{"file": "collector c: cut mid-wr')  # never fsynced: never answered
    with caplog.at_level(logging.WARNING):
        assert Rejected(tmp_path).take() == [LETTER]
    assert "event=rejected_line_unreadable" in caplog.text


def test_an_intake_rejects_to_disk_redacted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    intake = Intake("c", spool)
    secret = b'{"data": {"password": "hunter2-value"}} not json'
    intake.reject("POST /x", "not JSON", secret, "vault")
    on_disk = (tmp_path / "spool" / LETTERS).read_bytes()
    assert b"hunter2" not in on_disk and intake.counts.rejected == 1
    [letter] = Intake("c", spool).take_dead()  # restarted
    assert letter.file == "collector c: POST /x" and b"hunter2" not in letter.raw
    spool.close()
