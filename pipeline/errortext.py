"""Free text from audit records made safe to keep, above all the error text stored on events.

Audit logs carry the backend's error message verbatim (Vault `error`, CloudTrail
`errorMessage`, GCP `status.message`, Kubernetes `responseStatus.message`, Azure
`resultDescription`), and such messages can quote the value that was refused
("Value 'hunter2' at 'secretString' failed to satisfy constraint"), a name, or a token. Every
source stores `clean_error(...)` of what it read: the code and the reason stay readable,
quoted substrings become an ellipsis, credential shapes are masked. The shapes are shared
with `pipeline.redact`, which matches them on raw bytes too.
"""

from __future__ import annotations

import re
from functools import lru_cache

MASK = "[REDACTED]"

# -- credential shapes, also matched on raw bytes by `pipeline.redact` --------------------

# (literals one of which a text holds, lower-cased, if the shape can be in it; pattern; repl)
SHAPES = (
    (
        ("-----begin",),
        r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
        "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----",
    ),
    (("hvs.", "hvb.", "hvr."), r"(?<![A-Za-z0-9_])hv[sbr]\.[A-Za-z0-9_-]{16,}", MASK),  # Vault
    (  # legacy Vault tokens
        ("s.", "b.", "r."),
        r"(?<![A-Za-z0-9_.])[sbr]\.[A-Za-z0-9]{24,}(?![A-Za-z0-9])",
        MASK,
    ),
    (("eyj",), r"(?<![A-Za-z0-9_])eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}", MASK),  # JWT
    (("gh",), r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}", MASK),  # GitHub tokens
    (("xox",), r"(?<![A-Za-z0-9_])xox[abposr]-[A-Za-z0-9-]{10,}", MASK),  # Slack tokens
    (
        ("bearer", "basic", "negotiate"),
        r"(?i)(?<![A-Za-z0-9_])(bearer|basic|negotiate)((?:[ \t]|%20|\\t)+)"
        r"(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}",
        r"\1\2" + MASK,
    ),
    (
        ("secretaccess", "secret_access", "awssecret", "aws_secret"),
        r"(?i)((?:aws_?)?secret_?access_?key|aws_?secret_?key)([\s\"':=\\]{1,8})"
        r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
        r"\1\2" + MASK,
    ),
)
# `password=...`, `token: ...`, `?sig=...` in free text (a DSN, a query string, a header line)
_KV_NAMES = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|token|access[_-]?token"
    r"|refresh[_-]?token|session[_-]?token|client_token|auth[_-]?token|x-vault-token|jwt"
    r"|api[_-]?key|x-api-key|private[_-]?key|secret[_-]?key|secret_?access_?key"
    r"|aws_secret_access_key|secret_?string|secret_?value|secret_?data|connection_?string"
    r"|plaintext|accountkey|sharedaccesskey|sig"
)
_KV = r"(?i)(?<![\w-])(" + _KV_NAMES + r")(?![\w-])(\s*=\s*|:[ \t]+)(?!\[REDACTED\])"
_KV_VALUE = r"(?:\"[^\"]*\"?|'[^']*'?|[^\s,;&\"'<>{}\[\]\\]+)"

KV = _KV + _KV_VALUE
_SHAPES_STR = tuple((hints, re.compile(p, re.S), r) for hints, p, r in SHAPES)
_KV_STR = re.compile(KV)
_KV_COLON_FREE = re.compile(KV.replace(r"|:[ \t]+", ""))


def scrub_text(text: str, colon: bool = True) -> str:
    """Credential shapes and `name=value` secrets masked in free text.

    >>> scrub_text("retry with Authorization: Bearer abc.def.ghi or ?token=xyz&page=2")
    'retry with Authorization: Bearer [REDACTED] or ?token=[REDACTED]&page=2'
    """
    lower = text.lower()
    for hints, pattern, repl in _SHAPES_STR:
        if any(hint in lower for hint in hints):
            text = pattern.sub(repl, text)
    if "=" in text or (colon and (": " in text or ":\t" in text)):
        text = (_KV_STR if colon else _KV_COLON_FREE).sub(r"\1\2" + MASK, text)
    return text


# -- quoted values -------------------------------------------------------------------------

_ERROR_INPUT = 4096  # characters of an error message looked at; the stored form is shorter
# AWS validation errors: "Value '<the value>' at '<field>' failed to satisfy constraint".
_VALUE_AT = re.compile(r"\bValue (.+?) at '([\w.\[\]/:-]{1,128})'", re.S)
_QUOTED = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r"|(?<![\w])'(?:[^'\\]|\\.|'(?=\w))*'(?!\w)"
    r"|`[^`]*`|“[^”]*”|‘[^’]*’",
    re.S,
)
_OPEN_QUOTE = re.compile(r"\"|(?<![\w])'|`|“|‘", re.S)
_CLOSER = {'"': '"', "'": "'", "`": "`", "“": "”", "‘": "’"}
_INVALID_VALUE = re.compile(r"(Invalid value: )(?![\"'`])[^:\n]+")


@lru_cache(maxsize=1024)  # sources repeat a few texts ("permission denied") endlessly
def clean_error(text: str | None) -> str | None:
    """Error text as sources store it: quoted substrings (which carry values, names and
    tokens) replaced by an ellipsis, AWS's "Value ... at 'field'" reduced to the field,
    credential shapes and `name=value` secrets masked; the code and the reason kept.

    >>> clean_error("1 validation error detected: Value 'hunter2' at 'secretString' failed to "
    ...             "satisfy constraint: Member must have length less than or equal to 65536")
    "1 validation error detected: Value '…' at 'secretString' failed to satisfy constraint: \
Member must have length less than or equal to 65536"
    >>> clean_error('403 Forbidden: secrets "db" is forbidden: User "bob" cannot get it')
    '403 Forbidden: secrets "…" is forbidden: User "…" cannot get it'
    """
    if not text:
        return None
    return scrub_text(unquote(text[:_ERROR_INPUT]), colon=False)


def unquote(text: str) -> str:
    """Quoted substrings replaced by an ellipsis (one left open: to the end), and AWS's
    "Value <anything> at '<field>'" by "Value '…' at '<field>'"."""
    parts, pos = [], 0
    for match in _VALUE_AT.finditer(text):
        parts += [_drop_quoted(text[pos : match.start()]), f"Value '…' at '{match[2]}'"]
        pos = match.end()
    parts.append(_drop_quoted(text[pos:]))
    return "".join(parts)


def _drop_quoted(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        quoted = match[0]
        return quoted if len(quoted) == 2 else quoted[0] + "…" + quoted[-1]

    text = _QUOTED.sub(one, text)
    text = _INVALID_VALUE.sub(r"\1…", text)
    # A quote left open (the text was cut inside it): everything after it goes.
    pos = 0
    while (match := _OPEN_QUOTE.search(text, pos)) is not None:
        closer = _CLOSER[match[0]]
        for pair in (closer, "…" + closer):
            if text.startswith(pair, match.end()):
                pos = match.end() + len(pair)
                break
        else:
            return text[: match.end()] + "…"
    return text
