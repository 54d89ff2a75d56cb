"""An Arrow stream from the API as plain rows, read without pandas or pyarrow.

`secretwatch events --server URL` prints a hundred rows in a process that lives a fraction
of a second; loading pandas and pyarrow to read them would take most of a second more.
nanoarrow (a small C library) reads the same IPC stream `frames.frame_to_arrow` writes.
Values come back as Python values: str, int, float, `datetime` (tz-aware when the column
has a zone), and None where pandas would have None or NaN.
"""

from __future__ import annotations

from typing import Any

import nanoarrow as na


def arrow_to_rows(data: bytes) -> list[dict[str, Any]]:
    """One dict per row, columns in order; ValueError if `data` is not an Arrow stream.

    >>> import pandas as pd
    >>> from pipeline.api.frames import frame_to_arrow
    >>> frame = pd.DataFrame({"identity": ["a", None], "n": [1, 2]})
    >>> arrow_to_rows(frame_to_arrow(frame))
    [{'identity': 'a', 'n': 1}, {'identity': None, 'n': 2}]
    """
    try:
        table = na.ArrayStream.from_readable(data).read_all()
    except RuntimeError as exc:  # nanoarrow's (private) NanoarrowException
        raise ValueError(f"not an Arrow IPC stream: {exc}") from None
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows
