"""Text from audit logs, printed inert: no markup, no escape sequences, no control characters.

An identity, secret path, user agent, error text or file name comes from whoever wrote the
audit record. Printed as it is, `[/]` crashes Rich, `[link=...]` becomes a hyperlink, and
ESC, CSI, OSC (0 title, 8 link, 52 clipboard), BEL, backspace, carriage return, C1 controls
and bidi overrides drive the terminal. Everything the CLI prints from a store or a log goes
through `inert` (a Rich `Text`, never parsed as markup) with every control or format
character shown as a visible escape (`\\x1b`, `\\u202e`); log records go through
`InertFormatter`, JSON lines through `json_line`.

>>> visible("svc\\x1b]0;pwned\\x07\\u202e")
'svc\\\\x1b]0;pwned\\\\x07\\\\u202e'
>>> inert("[/]").plain
'[/]'
"""

from __future__ import annotations

import logging
import re
import unicodedata
from types import TracebackType

import orjson
from rich.text import Text

# Unicode categories never printed raw: controls (C0, DEL, C1), format characters (bidi
# overrides and isolates, zero-width ones), line and paragraph separators, lone surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NOT_PLAIN = re.compile(r"[^\x20-\x7e]")
# What `sys.exc_info()` returns, as `logging.Formatter.formatException` takes it.
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: object, keep: str = "") -> str:
    """`text` (str() of anything else) with every control or format character, except those
    in `keep`, replaced by a visible escape; printable text, any script, is left alone.

    >>> visible("a\\rb\\tc"), visible("x\\ny", keep="\\n"), visible("東京 ✓")
    ('a\\\\rb\\\\tc', 'x\\ny', '東京 ✓')
    """
    string = text if isinstance(text, str) else str(text)

    def swap(match: re.Match[str]) -> str:
        char = match[0]
        if char in keep or unicodedata.category(char) not in _HIDDEN:
            return char
        return _escape(char)

    return _NOT_PLAIN.sub(swap, string)


def inert(text: object, keep: str = "") -> Text:
    """`text` as Rich `Text`: printed literally (markup is never parsed, escapes visible
    but for the characters in `keep`, e.g. the newlines of a message of several lines).
    Join it to our own markup with `+`: `Text.from_markup("[bold]id[/] ") + inert(name)`."""
    return Text(visible(text, keep))


def json_line(value: object) -> bytes:
    """One JSON line; orjson escapes C0 controls, this also escapes DEL, C1 controls, bidi
    and other format characters and line separators (the same value, as `\\uXXXX`).

    >>> json_line({"identity": "a\\u202eb\\x9b"})
    b'{"identity":"a\\\\u202eb\\\\u009b"}\\n'
    """
    text = orjson.dumps(value).decode()

    def swap(match: re.Match[str]) -> str:
        char = match[0]
        if unicodedata.category(char) not in _HIDDEN:
            return char
        return "".join(f"\\u{unit:04x}" for unit in _utf16(char))

    return _NOT_PLAIN.sub(swap, text).encode() + b"\n"


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


class InertFormatter(logging.Formatter):
    """Log lines with the message inert: one line each (a newline in a value cannot forge
    another record) and no escape sequence; tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return visible(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:  # noqa: N802 - logging's name
        return visible(super().formatException(ei), keep="\n")

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return visible(super().formatStack(stack_info), keep="\n")


def log_to_stderr(level: int = logging.INFO) -> None:
    """Log lines on stderr (`time LEVEL message`), every message inert; as
    `logging.basicConfig`, nothing changes if the root logger has handlers already."""
    handler = logging.StreamHandler()
    handler.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
