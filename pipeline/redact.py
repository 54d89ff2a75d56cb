"""Scrub secret-bearing values out of raw bytes before they are kept anywhere.

Dead-letter records keep the raw input so an operator can fix it, but a malformed line can
still carry a Kubernetes Secret's `data`, a CloudTrail `SecretString`, a Vault token in a
request header or a private key in a free-text field. `redact_raw` works in two layers:

- a tolerant, iterative JSON walk (no recursion, any depth) that decodes each key (escapes
  included, case ignored) and masks the whole value of every secret-bearing key, keeps
  `hmac-sha256:` hashes, follows JSON held inside strings (a `last-applied-configuration`
  annotation, a message carrying a document), removes quoted values from error messages,
  and scrubs credential shapes (Vault tokens, bearer tokens, JWTs, private keys, AWS secret
  keys) out of every other string;
- where the bytes are not one valid JSON document (truncated, bad escapes, too deep for
  orjson, several documents), a conservative pattern scrub on top: secret-bearing keys are
  found wherever they appear, quoted, backslash-escaped or `\\u`-escaped, and their values
  masked, along with the same credential shapes.

The bytes are kept as written (spacing, key order, numbers) except where a value is masked,
so a dead letter still shows what was wrong with the record. Free text (error messages) is
cleaned as `pipeline.errortext` cleans the error text stored on events.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import orjson

from pipeline.errortext import KV, MASK, SHAPES, scrub_text, unquote
from pipeline.secret_keys import LONGEST_KEY, NAME_KEYS, SENSITIVE, TEXT_KEYS

_MASK = b'"[REDACTED]"'
MAX_RAW = 8192
_CLIPPED = b"...[clipped]"
_MAX_NEST = 4  # JSON in a string in a string...: deeper than this, such a string is masked whole
_VALIDATE_UP_TO = 1 << 20  # larger inputs are scrubbed as if broken (conservative)
_SCAN_CAP = 1 << 22  # a masked value not closed within 4 MiB is masked to the end
_SLACK = 256  # bytes looked at beyond the clip point, so a shape cut there is still seen

_HMAC = r"hmac-sha256:[0-9a-f]{64}"
_HMAC_STR = re.compile(_HMAC)
_HMAC_BYTES = re.compile(_HMAC.encode())
_SHAPES_BYTES = tuple(
    (tuple(h.encode() for h in hints), re.compile(p.encode(), re.S), r.encode())
    for hints, p, r in SHAPES
)
_KV_BYTES = re.compile(KV.encode())
# A string whose bytes hold none of these is kept as it is, without decoding it.
_LOOK_CLOSER = re.compile(
    b"|".join(
        re.escape(h)
        for h in sorted({h.encode() for hints, _, _ in SHAPES for h in hints})
        + [b"=", b": ", b":\t", b"\\", b"{", b"[", b'"']
    ),
    re.I,
)
_STRUCTURE = re.compile(r'[{\["]')

# -- JSON scanning on bytes ---------------------------------------------------------------------

_WS = re.compile(rb"[ \t\r\n]*")
_SCALAR = re.compile(rb'[^ \t\r\n{}\[\]:,"]+')
_STRUCT = re.compile(rb'["{}\[\]]')
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.S)
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _string_end(raw: bytes, i: int) -> tuple[int, bool]:
    """Index of the quote closing the string whose content starts at `i`, and whether there
    is one (`len(raw)` when the string is cut)."""
    q = raw.find(b'"', i)
    if q > i and raw[q - 1] != 0x5C:  # the usual case: no escaped quote
        return q, True
    start = i
    while True:
        q = raw.find(b'"', i)
        if q < 0:
            return len(raw), False
        k = q - 1
        while k >= start and raw[k] == 0x5C:
            k -= 1
        if (q - 1 - k) % 2 == 0:
            return q, True
        i = q + 1


def _container_end(raw: bytes, i: int) -> int:
    """Index just past the object or array at `i`; the end of input if it is cut or too long."""
    depth, pos, stop = 0, i, min(len(raw), i + _SCAN_CAP)
    while True:
        match = _STRUCT.search(raw, pos, stop)
        if match is None:
            return len(raw)
        at = match.start()
        c = raw[at]
        if c == 0x22:
            end, closed = _string_end(raw, at + 1)
            if not closed:
                return len(raw)
            pos = end + 1
            continue
        depth += 1 if c in (0x7B, 0x5B) else -1
        if depth == 0:
            return at + 1
        pos = at + 1


def _unescape(body: bytes) -> str:
    """JSON string content decoded, tolerating bad escapes and invalid UTF-8."""
    text = body.decode("utf-8", "replace")
    if "\\" not in text:
        return text
    text = _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else _SIMPLE.get(m[2], m[2]), text)
    if _SURROGATE.search(text):  # pairs joined, lone halves replaced
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _key_name(body: bytes) -> str | None:
    """A key as compared with the lists: escapes decoded, case folded; None if too long to
    be one of them."""
    if len(body) > 8 * LONGEST_KEY:
        return None
    key = body.decode("utf-8", "replace")
    for _ in range(3):  # escaped once per level of JSON-in-a-string
        if "\\" not in key:
            break
        key = _unescape(key.encode())
    return key.replace("\\", "").strip().lower()


def _valid_json(raw: bytes) -> bool:
    if len(raw) > _VALIDATE_UP_TO:
        return False
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


# -- layer 1: the JSON walk ---------------------------------------------------------------------


def _redact(raw: bytes, nest: int, limit: int) -> tuple[bytes, bool]:
    """Redacted bytes, and whether they stop short of the input (cut past `limit`)."""
    out, cut = _walk(raw, nest, limit)
    if cut or not _valid_json(raw):
        return _scrub(bytes(out)), cut
    return bytes(out), cut


_OBJECT = 1
# What a key is (bits): its value masked whole; `secret` (see `NAME_KEYS`); a name; free text.
_WHOLE, _SOFT, _NAME, _TEXT = 2, 4, 8, 16
_BLANKS = frozenset(b" \t\r\n")
_PUNCTUATION = frozenset(b",:}]")


@lru_cache(maxsize=4096)  # records of one source repeat the same few keys
def _key_kind(body: bytes) -> int:
    name = _key_name(body)
    if name == "secret":
        return _SOFT
    return (
        (_WHOLE if name in SENSITIVE else 0)
        | (_NAME if name in NAME_KEYS else 0)
        | (_TEXT if name in TEXT_KEYS else 0)
    )


def _walk(raw: bytes, nest: int, limit: int) -> tuple[bytearray, bool]:
    """One pass over the tokens, with an explicit stack: any depth, any breakage."""
    out = bytearray()
    n, i = len(raw), 0
    stack: list[int] = []  # per open container: _OBJECT | _SOFT
    want_key = False
    kind = 0  # what the key of the value that comes next is (_WHOLE, _SOFT, ...)
    while i < n:
        room = limit + _SLACK - len(out)
        if room <= 0:
            return out, True
        c = raw[i]
        if c in _BLANKS:
            blanks = _WS.match(raw, i, i + room + 1)
            assert blanks is not None  # noqa: S101 - `*`: it matches, if only the empty string
            stop = blanks.end()
            out += raw[i : min(stop, i + room)]
            i = stop
            continue
        if c in _PUNCTUATION:  # , : } ]
            if c != 0x3A:  # after `:` the key's value comes; otherwise a key or an item
                if c != 0x2C and stack:
                    stack.pop()
                kind = 0
                want_key = c == 0x2C and bool(stack and stack[-1] & _OBJECT)
            out.append(c)
            i += 1
            continue
        top = stack[-1] if stack else 0
        if c == 0x22 and want_key and top & _OBJECT:
            end, closed = _string_end(raw, i + 1)
            stop = end + 1 if closed else n
            kind, want_key = _key_kind(raw[i + 1 : end]), False
            out += raw[i : min(stop, i + room)]
            i = stop
            continue
        soft = kind & _SOFT or top & _SOFT
        masked = kind & _WHOLE or (soft and not kind & _NAME)
        if c == 0x22:
            end, closed = _string_end(raw, i + 1)
            stop = end + 1 if closed else n
            if not masked and not kind & _TEXT and stop - i <= room:
                if not _LOOK_CLOSER.search(raw, i + 1, end):  # nothing to look at: as it is
                    out += raw[i:stop]
                    i, kind = stop, 0
                    continue
            if masked:
                keep = closed and (end == i + 1 or _HMAC_BYTES.fullmatch(raw, i + 1, end))
                out += raw[i:stop] if keep else _MASK
            elif end - i > room:  # only what can be kept is looked at
                out += _string(raw[i + 1 : i + room], False, kind, nest, limit)
                return out, True
            else:
                out += _string(raw[i + 1 : end], closed, kind, nest, limit)
            i = stop
        elif c in (0x7B, 0x5B):
            if kind & _WHOLE:
                out += _MASK
                i = _container_end(raw, i)
            else:
                stack.append((_OBJECT if c == 0x7B else 0) | (_SOFT if soft else 0))
                want_key = c == 0x7B
                out.append(c)
                i += 1
        elif masked:  # a number, a literal, or junk: masked unless null
            scalar = _SCALAR.match(raw, i, i + _SCAN_CAP)
            assert scalar is not None  # noqa: S101 - c is none of the bytes it stops at
            stop = scalar.end()
            out += b"null" if raw[i:stop] == b"null" else _MASK
            i = n if stop == i + _SCAN_CAP else stop
        else:
            scalar = _SCALAR.match(raw, i, i + room + 1)
            assert scalar is not None  # noqa: S101 - c is none of the bytes it stops at
            stop = scalar.end()
            out += raw[i : min(stop, i + room)]
            i = stop
        kind = 0
    return out, False


def _string(body: bytes, closed: bool, kind: int, nest: int, limit: int) -> bytes:
    """A string value not under a secret key: JSON inside it redacted, quoted values out of
    error messages, shapes scrubbed."""
    text = _unescape(body)
    if _HMAC_STR.fullmatch(text):
        new: str | None = None
    elif kind & _TEXT and not _valid_json(text.encode()):
        cleaned = scrub_text(unquote(text))
        new = None if cleaned == text else cleaned
    elif _STRUCTURE.search(text):
        if nest >= _MAX_NEST:
            new = MASK
        else:
            inner = text.encode()
            done, _ = _redact(inner, nest + 1, limit)
            new = None if done == inner else done.decode("utf-8", "replace")
    else:
        scrubbed = scrub_text(text)
        new = None if scrubbed == text else scrubbed
    if new is None:
        return b'"' + body + (b'"' if closed else b"")
    encoded = orjson.dumps(new)
    return encoded if closed else encoded[:-1]


# -- layer 2: the pattern scrub of bytes that are not one JSON document ---------------------------

# The end of a quoted key at any escape level: `":`, `\":`, `\\\":`, `\u0022:`.
_KEY_END = re.compile(rb'("|\\u0022)[ \t\r\n]*:[ \t\r\n]*')
_EVEN_QUOTE = re.compile(rb'(?<!\\)(?:\\\\)*"')


def _secret_keys(raw: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(start, opening quote, where its value starts) of every quoted secret-bearing key."""
    for match in _KEY_END.finditer(raw):
        close, mark = match.start(), match[1]
        opener = raw.rfind(mark, max(0, close - 8 * LONGEST_KEY), close)
        if opener < 0 or not _key_kind(raw[opener + len(mark) : close]) & (_WHOLE | _SOFT):
            continue
        start = opener
        while start > 0 and raw[start - 1] == 0x5C:
            start -= 1
        yield start, raw[start : opener + len(mark)], match.end()


def _scrub(raw: bytes) -> bytes:
    """Values of secret-bearing keys found anywhere, then credential shapes, masked."""
    spans: list[tuple[int, int, bytes]] = []
    covered = 0
    for at, quote, value in _secret_keys(raw):
        if at < covered:
            continue  # inside a value masked already
        span = _value_span(raw, value, quote)
        if span is not None:
            spans.append(span)
            covered = span[1]
    if spans:
        parts, pos = [], 0
        for start, end, mask in spans:
            parts += [raw[pos:start], mask]
            pos = end
        parts.append(raw[pos:])
        raw = b"".join(parts)
    lower = raw.lower()
    for hints, pattern, repl in _SHAPES_BYTES:
        if any(hint in lower for hint in hints):
            raw = pattern.sub(repl, raw)
    if b"=" in raw or b": " in raw or b":\t" in raw:
        raw = _KV_BYTES.sub(rb"\1\2" + MASK.encode(), raw)
    return raw


def _value_span(raw: bytes, start: int, quote: bytes) -> tuple[int, int, bytes] | None:
    """The span to mask for the value at `start` of a key opened by `quote`, or None when
    there is nothing to mask (null, already masked, a hash, nothing left)."""
    rest = raw[start : start + 160]
    if not rest or rest.startswith(b"null"):
        return None
    if quote == b'"':  # a key of this document
        if rest[:1] == b'"':
            end, closed = _string_end(raw, start + 1)
            body = raw[start + 1 : end]
            if closed and (body in (b"", MASK.encode()) or _HMAC_BYTES.fullmatch(body)):
                return None
            return start, (end + 1 if closed else len(raw)), _MASK
        if rest[:1] in (b"{", b"["):
            return start, _container_end(raw, start), _MASK
        scalar = _SCALAR.match(raw, start)
        return (start, scalar.end(), _MASK) if scalar else None
    # a key of a document inside a string: mask to the end of that string
    inner = rest[len(quote) :] if rest.startswith(quote) else b""
    if inner.startswith(MASK.encode()) or _HMAC_BYTES.match(inner) and inner[76:77] == b"\\":
        return None
    closing = _EVEN_QUOTE.search(raw, start + (len(quote) if rest.startswith(quote) else 0))
    stop = closing.end() - 1 if closing else len(raw)
    if stop <= start:
        return None
    return start, stop, quote + MASK.encode() + quote


def redact_raw(raw: bytes, limit: int = MAX_RAW) -> bytes:
    r"""Mask the value of every secret-bearing key and every credential shape, then clip to
    `limit` bytes.

    >>> redact_raw(b'{"kind":"Secret","data":{"pw":"aHVudGVyMg=="},"x":1}')
    b'{"kind":"Secret","data":"[REDACTED]","x":1}'
    >>> redact_raw(b'{"SecretString":"hunter2')
    b'{"SecretString":"[REDACTED]"'
    >>> redact_raw(b'{"\\u0050assword":"hunter2","headers":{"X-Vault-Token":["hvs.x"]}}')
    b'{"\\u0050assword":"[REDACTED]","headers":{"X-Vault-Token":"[REDACTED]"}}'
    """
    out, cut = _redact(bytes(raw), 0, limit)
    if len(out) > limit or cut:
        return out[:limit] + _CLIPPED
    return out
