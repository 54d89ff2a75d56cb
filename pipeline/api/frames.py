"""Frames on the wire: an Arrow IPC stream carries a pandas frame with its dtypes (time
zones, nullable columns, bytes) intact, so a frame read through the API prints exactly as
one read from the store itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ARROW_STREAM = "application/vnd.apache.arrow.stream"
TRUNCATED = "secretwatch-truncated"  # header: the answer stopped at the row cap (its value)


def frame_to_arrow(frame: pd.DataFrame) -> bytes:
    """The frame as one Arrow IPC stream (the index is not sent: store frames have none)."""
    import pyarrow as pa  # here, not at import: the CLI reads rows without it (`rows`)

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def arrow_to_frame(data: bytes) -> pd.DataFrame:
    """The frame `frame_to_arrow` sent; ValueError if `data` is not an Arrow stream."""
    import pyarrow as pa  # here, not at import: the CLI reads rows without it (`rows`)

    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except pa.ArrowException as exc:
        raise ValueError(f"not an Arrow IPC stream: {exc}") from None
    return table.to_pandas()
