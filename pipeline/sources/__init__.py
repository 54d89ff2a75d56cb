"""Source registry: one module per audit-log format, looked up by name.

>>> sorted(SOURCES)
['aws', 'azure', 'gcp', 'k8s', 'vault']
"""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.sources import azure, cloudtrail, gcp, k8s, vault
from pipeline.sources.base import DocumentParser, Parser, SourceSpec

SOURCES: dict[str, SourceSpec] = {
    spec.name: spec for spec in (vault.SPEC, cloudtrail.SPEC, gcp.SPEC, azure.SPEC, k8s.SPEC)
}


def recognize(doc: object) -> str | None:
    """The format whose records look like `doc` (one audit record); a file's format is
    recognised from its first records by `pipeline.sources.formats.recognize_format`.

    >>> recognize({"type": "request", "request": {"id": "r1"}})
    'vault'
    >>> recognize({"unrelated": 1}) is None
    True
    """
    if not isinstance(doc, dict):
        return None
    for name, spec in SOURCES.items():
        if spec.looks_like(doc):
            return name
    return None


def new_parser(name: str, backend: str | None = None) -> Parser:
    try:
        spec = SOURCES[name]
    except KeyError:
        valid = ", ".join(sorted(SOURCES))
        raise ConfigError(f"unknown format {name!r}; valid formats: {valid}") from None
    parser = spec.new_parser(backend)
    if isinstance(parser, DocumentParser):
        parser.guess = recognize  # so a dead letter can say which format a stray record is
    return parser
