"""What one input may cost (`ingest.limits` in the config): its own module, so reading the
config does not load every parser (`pipeline.sources.framing` enforces these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

MAX_LINE_BYTES = 64 << 20  # the default of `Limits.max_line_bytes`


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one input may cost (`ingest.limits` in the config).

    A line over `max_line_bytes`, a whole-document file over `max_document_bytes`, or a gzip
    stream that inflates past `max_decompressed_bytes` or more than `max_compression_ratio`
    times its compressed size (checked once a line's worth has been inflated) is cut: one
    dead letter, and reading goes on with the next line (or the next file).
    """

    max_line_bytes: Annotated[int, Field(ge=1024)] = MAX_LINE_BYTES
    max_document_bytes: Annotated[int, Field(ge=1024)] = 256 << 20
    max_decompressed_bytes: Annotated[int, Field(ge=1024)] = 64 << 30
    max_compression_ratio: Annotated[float, Field(gt=1)] = 200.0
