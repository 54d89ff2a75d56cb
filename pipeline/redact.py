"""Scrub secret-bearing values out of raw bytes and error text before they are kept anywhere.

Dead-letter records keep the raw input so an operator can fix it, but a malformed line can
still carry a Kubernetes Secret's `data`, a CloudTrail `SecretString`, a Vault token in a
request header or a private key in a free-text field. `redact_raw` works in two layers:

- a tolerant, iterative JSON walk (no recursion, any depth) that decodes each key (escapes
  included, case ignored) and masks the whole value of every secret-bearing key, keeps
  `hmac-sha256:` hashes, follows JSON held inside strings (a `last-applied-configuration`
  annotation, a message carrying a document) and scrubs credential shapes (Vault tokens,
  bearer tokens, JWTs, private keys, AWS secret keys) out of every other string;
- where the bytes are not one valid JSON document (truncated, bad escapes, too deep for
  orjson, several documents), a conservative pattern scrub on top: secret-bearing keys are
  found wherever they appear, quoted, backslash-escaped or `\\u`-escaped, and their values
  masked, along with the same credential shapes.

The bytes are kept as written (spacing, key order, numbers) except where a value is masked,
so a dead letter still shows what was wrong with the record. `scrub_text` is the shape scrub
on its own, for free text (`pipeline.errortext` cleans the error text sources store with it).
"""

from __future__ import annotations

import re

import orjson

SENSITIVE_KEYS = (
    "data",
    "stringData",
    "SecretString",
    "SecretBinary",
    "secretString",
    "secretBinary",
    "value",
    "Value",
    "password",
    "token",
    "client_token",
    "sessionToken",
    "secretAccessKey",
    "privateKey",
    "private_key",
    "plaintext",
    "payload",
    "jwt",
    "secret_id",
    "requestObject",
    "responseObject",
    # Vault request headers and token accessors (kept when HMAC'd)
    "x-vault-token",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "accessor",
    "client_token_accessor",
    # a JSON string holding the object as applied, `data` and `stringData` included
    "kubectl.kubernetes.io/last-applied-configuration",
    "secretValue",
    "secretData",
    "connectionString",
    "apiKey",
    "api_key",
    "x-api-key",
    "ClientSecret",
    "client_secret",
    "PrivateKey",
    "private_key_pem",
    "Token",
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "session_token",
    "secret",
    "secret_key",
    "secretKey",
    "aws_secret_access_key",
    "passwd",
    "credentials",
)
# Matched after decoding escapes, ignoring case: `Password`, `\u0070assword`, `TOKEN`.
_SENSITIVE = frozenset(k.lower() for k in SENSITIVE_KEYS)
_LONGEST_KEY = max(len(k) for k in _SENSITIVE)
MASK = "[REDACTED]"
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

# -- credential shapes, the same in text and in raw bytes -------------------------------------

_SHAPES = (
    (
        r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
        "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----",
    ),
    (r"(?<![A-Za-z0-9_])hv[sbr]\.[A-Za-z0-9_-]{16,}", MASK),  # Vault tokens
    (r"(?<![A-Za-z0-9_.])[sbr]\.[A-Za-z0-9]{24,}(?![A-Za-z0-9])", MASK),  # legacy Vault tokens
    (r"(?<![A-Za-z0-9_])eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}", MASK),  # JWT
    (r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}", MASK),  # GitHub tokens
    (r"(?<![A-Za-z0-9_])xox[abposr]-[A-Za-z0-9-]{10,}", MASK),  # Slack tokens
    (
        r"(?i)(?<![A-Za-z0-9_])(bearer|basic|negotiate)((?:[ \t]|%20|\\t)+)"
        r"(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}",
        r"\1\2" + MASK,
    ),
    (
        r"(?i)((?:aws_?)?secret_?access_?key|aws_?secret_?key)([\s\"':=\\]{1,8})"
        r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
        r"\1\2" + MASK,
    ),
)
# `password=...`, `token: ...`, `?sig=...` in free text (a DSN, a query string, a header line)
_KV_NAMES = (
    r"password|passwd|pwd|secret|client_?secret|token|access_?token|refresh_?token|api_?key"
    r"|private_?key|secret_?key|aws_secret_access_key|x-vault-token|accountkey"
    r"|sharedaccesskey|sig"
)
_KV = r"(?i)(?<![\w-])(" + _KV_NAMES + r")(?![\w-])(\s*=\s*|:[ \t]+)(?!\[REDACTED\])"
_KV_VALUE = r"(?:\"[^\"]*\"?|'[^']*'?|[^\s,;&\"'<>{}\[\]\\]+)"

_SHAPES_STR = tuple((re.compile(p, re.S), r) for p, r in _SHAPES)
_SHAPES_BYTES = tuple((re.compile(p.encode(), re.S), r.encode()) for p, r in _SHAPES)
_KV_STR = re.compile(_KV + _KV_VALUE)
_KV_COLON_FREE = re.compile(_KV.replace(r"|:[ \t]+", "") + _KV_VALUE)
_KV_BYTES = re.compile((_KV + _KV_VALUE).encode())


def scrub_text(text: str, colon: bool = True) -> str:
    """Credential shapes and `name=value` secrets masked in free text.

    >>> scrub_text("retry with Authorization: Bearer abc.def.ghi or ?token=xyz&page=2")
    'retry with Authorization: Bearer [REDACTED] or ?token=[REDACTED]&page=2'
    """
    for pattern, repl in _SHAPES_STR:
        text = pattern.sub(repl, text)
    return (_KV_STR if colon else _KV_COLON_FREE).sub(r"\1\2" + MASK, text)


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
    if len(body) > 8 * _LONGEST_KEY:
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


_OBJECT, _SOFT = 1, 2
# Under a key named `secret`, an object is often a reference rather than a value (a Kubernetes
# volume's `{"secretName": ...}`, a GCP Secret resource, a Vault lease): it is walked, and only
# the fields that name things keep their values; every other string or number in it is masked.
_NAME_KEYS = frozenset(
    "name secretname namespace key path mode defaultmode optional items kind apiversion type "
    "location createtime expiretime etag lease_id lease_duration renewable".split()
)


def _walk(raw: bytes, nest: int, limit: int) -> tuple[bytearray, bool]:
    """One pass over the tokens, with an explicit stack: any depth, any breakage."""
    out = bytearray()
    n, i = len(raw), 0
    stack: list[int] = []  # per open container: _OBJECT | _SOFT
    want_key = False
    key: str | None = None  # the key of the value that comes next, normalised
    while i < n:
        room = limit + _SLACK - len(out)
        if room <= 0:
            return out, True
        stop = _WS.match(raw, i, i + room + 1).end()
        if stop > i:
            out += raw[i : min(stop, i + room)]
            i = stop
            continue
        c = raw[i]
        top = stack[-1] if stack else 0
        soft = key == "secret" or bool(top & _SOFT)
        whole = key in _SENSITIVE and key != "secret"
        masked = whole or (soft and key not in _NAME_KEYS)
        if c == 0x22:
            end, closed = _string_end(raw, i + 1)
            stop = end + 1 if closed else n
            if want_key and top & _OBJECT:
                key, want_key = _key_name(raw[i + 1 : end]), False
                out += raw[i : min(stop, i + room)]
                i = stop
                continue
            if masked:
                keep = closed and (end == i + 1 or _HMAC_BYTES.fullmatch(raw, i + 1, end))
                out += raw[i:stop] if keep else _MASK
            elif end - i > room:  # only what can be kept is looked at
                out += _string(raw[i + 1 : i + room], False, nest, limit)
                return out, True
            else:
                out += _string(raw[i + 1 : end], closed, nest, limit)
            i, key = stop, None
        elif c in (0x7B, 0x5B):
            if whole:
                out += _MASK
                i = _container_end(raw, i)
            else:
                stack.append((_OBJECT if c == 0x7B else 0) | (_SOFT if soft else 0))
                want_key = c == 0x7B
                out.append(c)
                i += 1
            key = None
        elif c in (0x7D, 0x5D, 0x3A, 0x2C):
            if c in (0x7D, 0x5D) and stack:
                stack.pop()
            if c != 0x3A:  # after `:` the key's value comes; otherwise a key or an item
                key = None
                want_key = c == 0x2C and bool(stack and stack[-1] & _OBJECT)
            out.append(c)
            i += 1
        elif masked:  # a number, a literal, or junk: masked unless null
            stop = _SCALAR.match(raw, i, i + _SCAN_CAP).end()
            out += b"null" if raw[i:stop] == b"null" else _MASK
            i, key = (n if stop == i + _SCAN_CAP else stop), None
        else:
            stop = _SCALAR.match(raw, i, i + room + 1).end()
            out += raw[i : min(stop, i + room)]
            i, key = stop, None
    return out, False


def _string(body: bytes, closed: bool, nest: int, limit: int) -> bytes:
    """A string value not under a secret key: JSON inside it redacted, shapes scrubbed."""
    text = _unescape(body)
    if _HMAC_STR.fullmatch(text):
        new: str | None = None
    elif any(c in text for c in '{["'):
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

# A quoted key at any escape level: `"k":`, `\"k\":`, `\\\"k\\\":`, `\u0022k\u0022:`.
_QKEY = re.compile(
    rb'(?=(\\*"|\\+u0022)([^"\r\n]{1,400}?)(?:\\*"|\\+u0022)([ \t\r\n]*:[ \t\r\n]*))'
)
_EVEN_QUOTE = re.compile(rb'(?<!\\)(?:\\\\)*"')


def _scrub(raw: bytes) -> bytes:
    """Values of secret-bearing keys found anywhere, then credential shapes, masked."""
    spans: list[tuple[int, int, bytes]] = []
    covered = 0
    for match in _QKEY.finditer(raw):
        at = match.start()
        if at < covered or (at and match[1] == b'"' and raw[at - 1] == 0x5C):
            continue  # inside a masked value, or the quote of an escaped one (seen already)
        if _key_name(match[2]) not in _SENSITIVE:
            continue
        span = _value_span(raw, match.end(3), match[1])
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
    for pattern, repl in _SHAPES_BYTES:
        raw = pattern.sub(repl, raw)
    return _KV_BYTES.sub(rb"\1\2" + MASK.encode(), raw)


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
        stop = _SCALAR.match(raw, start)
        return (start, stop.end(), _MASK) if stop else None
    # a key of a document inside a string: mask to the end of that string
    inner = rest[len(quote) :] if rest.startswith(quote) else b""
    if inner.startswith(MASK.encode()) or _HMAC_BYTES.match(inner) and inner[76:77] == b"\\":
        return None
    end = _EVEN_QUOTE.search(raw, start + (len(quote) if rest.startswith(quote) else 0))
    stop = end.end() - 1 if end else len(raw)
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
