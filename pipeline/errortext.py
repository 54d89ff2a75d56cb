"""Error text from the sources, cleaned before it is stored on an event.

Audit logs carry the backend's error message verbatim (Vault `error`, CloudTrail
`errorMessage`, GCP `status.message`, Kubernetes `responseStatus.message`, Azure
`resultDescription`), and such messages can quote the value that was refused
("Value 'hunter2' at 'secretString' failed to satisfy constraint"), a name, or a token. Every
source stores `clean_error(...)` of what it read: the code and the reason stay readable,
quoted substrings become an ellipsis, credential shapes are masked.
"""

from __future__ import annotations

import re

from pipeline.redact import scrub_text

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
    text = text[:_ERROR_INPUT]
    parts, pos = [], 0
    for match in _VALUE_AT.finditer(text):
        parts += [_unquote(text[pos : match.start()]), f"Value '…' at '{match[2]}'"]
        pos = match.end()
    parts.append(_unquote(text[pos:]))
    return scrub_text("".join(parts), colon=False)


def _unquote(text: str) -> str:
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
