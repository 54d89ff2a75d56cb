"""pipeline/terminal.py: text from audit logs is printed inert (no markup, no escapes)."""

from __future__ import annotations

import io
import logging
import re

import orjson
import pytest
from rich.console import Console
from rich.table import Table

from pipeline.terminal import InertFormatter, inert, json_line, visible

# Raw value -> how it must look on the terminal.
HOSTILE = {
    "[/]": "[/]",
    "[bold red]x[/]": "[bold red]x[/]",
    "[link=http://evil]x[/link]": "[link=http://evil]x[/link]",
    "\x1b[2J": "\\x1b[2J",
    "\x1b]0;title\x07": "\\x1b]0;title\\x07",
    "\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\": "\\x1b]8;;http://evil\\x1b\\x\\x1b]8;;\\x1b\\",
    "\x1b]52;c;aGk=\x07": "\\x1b]52;c;aGk=\\x07",
    "\x9b31m": "\\x9b31m",
    "a\u202eb": "a\\u202eb",
    "a\u2066b\u2069": "a\\u2066b\\u2069",
    "over\rwrite": "over\\rwrite",
    "back\x08space": "back\\x08space",
    "two\nlines": "two\\nlines",
    "nul\x00": "nul\\x00",
    "del\x7f": "del\\x7f",
    "sep\u2028": "sep\\u2028",
    "tag\U000e0041": "tag\\U000e0041",
    "ünïcödé, 東京, emoji 🔑": "ünïcödé, 東京, emoji 🔑",
}
# What must never reach a terminal from data: ESC, BEL, BS, CR, C1 controls, bidi controls.
CONTROLS = (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))
BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
FORBIDDEN = [chr(c) for c in (*CONTROLS, *BIDI)]


def without_styles(text: str) -> str:
    """Output less the SGR (colour, bold) sequences rich writes for our own styles."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def render(renderable: object, force_terminal: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=force_terminal, emoji=False)
    console.print(renderable)
    return buffer.getvalue()


@pytest.mark.parametrize(("raw", "shown"), HOSTILE.items())
def test_visible_escapes_every_control_character(raw: str, shown: str) -> None:
    assert visible(raw) == shown


def test_visible_keeps_what_it_is_asked_to() -> None:
    assert visible("a\nb\x1b", keep="\n") == "a\nb\\x1b"
    assert visible(None) == "None"
    assert visible(3) == "3"


@pytest.mark.parametrize(("raw", "shown"), HOSTILE.items())
@pytest.mark.parametrize("force_terminal", [False, True])
def test_inert_text_prints_literally(raw: str, shown: str, force_terminal: bool) -> None:
    printed = without_styles(render(inert(raw), force_terminal))
    assert printed == shown + "\n"
    assert not any(c in printed for c in FORBIDDEN)


@pytest.mark.parametrize(("raw", "shown"), HOSTILE.items())
def test_inert_in_a_table_cell(raw: str, shown: str) -> None:
    table = Table()
    table.add_column("identity")
    table.add_row(inert(raw))
    printed = render(table)
    assert shown in printed
    assert not any(c in printed for c in FORBIDDEN)


def test_inert_joins_our_own_markup() -> None:
    from rich.text import Text

    line = Text.from_markup("[bold red]alert[/] ") + inert("[/]\x1b[2J")
    assert render(line).rstrip("\n") == "alert [/]\\x1b[2J"


@pytest.mark.parametrize("raw", list(HOSTILE))
def test_json_line_is_json_without_raw_controls(raw: str) -> None:
    line = json_line({"identity": raw, "n": 1})
    assert line.endswith(b"\n")
    assert orjson.loads(line) == {"identity": raw, "n": 1}
    text = line.decode()
    assert not any(c in text for c in FORBIDDEN + ["\u2028"])


def test_orjson_alone_leaves_c1_and_bidi_raw() -> None:
    """Why json_line exists: orjson escapes C0 controls only."""
    assert "\x9b" in orjson.dumps("\x9b").decode()
    assert "\u202e" in orjson.dumps("\u202e").decode()
    assert "\x1b" not in orjson.dumps("\x1b").decode()


def test_inert_formatter_escapes_log_messages() -> None:
    record = logging.LogRecord(
        "pipeline.sinks.delivery", logging.WARNING, __file__, 1,
        "sink %r: %s", ("hook", "HTTP 400: unknown identity \x1b]0;pwned\x07\u202e\nFAKE line"),
        None,
    )  # fmt: skip
    text = InertFormatter("%(levelname)s %(message)s").format(record)
    assert text == (
        "WARNING sink 'hook': HTTP 400: unknown identity \\x1b]0;pwned\\x07\\u202e\\nFAKE line"
    )


def test_inert_formatter_keeps_traceback_lines() -> None:
    try:
        raise ValueError("bad \x1b[2J value")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = InertFormatter("%(message)s").format(record)
    assert "\x1b" not in text
    assert "bad \\x1b[2J value" in text
    assert text.count("\n") >= 3  # the traceback keeps its lines


def test_doctests() -> None:
    import doctest

    import pipeline.terminal

    assert doctest.testmod(pipeline.terminal).failed == 0
