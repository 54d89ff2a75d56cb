"""Store writes in a stream: does writing a batch slow down as the last hour fills?

    python tests/bench/bench_stream_writes.py [--events 2000000] [--batch 5000]

An always-on service writes batches of current events, so every batch lands in the same
hour as everything written in the last hour (72 million events at 20,000 a second). Rows
are written through `DuckDBStore.write_batch` (ids checked, as in ingest) with times
advancing 50 µs per event; the time of a batch is printed as the store fills, then the
same batch written again (all duplicates). Goal: flat, a batch costing the same at the end
as at the start. Not run by the test suite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.record import EventRow
from pipeline.store.duckdb import DuckDBStore

START_US = 1_800_000_000_000_000


def batch(first: int, size: int) -> list[EventRow]:
    return [
        EventRow(
            f"{i:08x}-3333-4333-8333-{i:012x}",
            START_US + i * 50,
            "vault",
            "vault",
            f"team-{i % 50}/svc",
            "entity",
            f"secret/data/app-{i % 900}",
            "read",
            "read",
            "success",
            "10.0.0.1",
            None,
            None,
            None,
            None,
        )  # fmt: skip
        for i in range(first, first + size)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args(argv)
    marks = {args.events // 10, args.events // 2, args.events - args.batch}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        with DuckDBStore(Path(tmp) / "s.duckdb") as store:
            first_ms = 0.0
            for start in range(0, args.events, args.batch):
                rows = batch(start, args.batch)
                began = time.perf_counter()
                store.write_batch(rows)
                ms = (time.perf_counter() - began) * 1000
                if start == 0:
                    first_ms = ms
                if start == 0 or start in marks:
                    print(f"batch at {start:>10,} events stored: {ms:8.1f} ms")
            began = time.perf_counter()
            assert store.write_batch(rows) == 0
            again_ms = (time.perf_counter() - began) * 1000
            print(f"the last batch again (duplicates): {again_ms:8.1f} ms")
            print(f"last / first batch: {ms / first_ms:.2f}x (goal: about 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
