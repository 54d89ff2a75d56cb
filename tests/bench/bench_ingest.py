"""Ingest benchmark: full Vault ingest versus bare `orjson.loads`, in one process, one core.

    python tests/bench/bench_ingest.py [--shape all|generator|harness|real] [--lines 1000000]
                                       [--seed 7] [--repeat 3] [--clock wall|cpu] [--stages]

Three shapes of Vault audit lines, each cached under the bench cache once generated:
- `generator`: `vault_gen.py` (compact lines, `type` and `request.id` first);
- `harness`: the Vault audit log of the detection harness's scenario (`scenario_gen.py`,
  seed 1, its scale picked for about `--lines` lines, cut to exactly that many);
- `real`: lines shaped exactly as Vault 1.21.4 writes them (`real_gen.py`: `type` last,
  `request.id` after the client token, request headers, HMAC'd data, token housekeeping).

Per shape, (a) decodes every line with orjson.loads (lines already in memory: the floor of
any JSON ingest); (b) runs the real ingest of the same file: read, frame, decode, pair,
normalize and store into a fresh DuckDB file. The two alternate, `--repeat` times, and each
keeps its best run. Goal: (b) reaches at least 60% of (a)'s lines per second on every shape.
The process is pinned to one CPU so DuckDB's threads cannot make (b) look better than it is.

`--stages` also says where (b)'s time goes, per shape (best of `--repeat` each): framing
(reading and splitting lines), decoding and pairing (the parser with `vault.normalize`
swapped for a constant row), normalizing (the parser's time less that), storing (one
`write_batch` of the parsed events), and the rest of (b) (dead-letter
and time-window checks, the summary). It prints the ratio (b) would reach if normalizing
cost nothing: the room left for it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_gen  # noqa: E402
import scenario_gen  # noqa: E402
import vault_gen  # noqa: E402

from pipeline.ingest import Ingestor, fewer_gc_passes  # noqa: E402
from pipeline.limits import Limits  # noqa: E402
from pipeline.record import EventRow  # noqa: E402
from pipeline.sources import vault  # noqa: E402
from pipeline.sources.framing import file_records  # noqa: E402
from pipeline.store.duckdb import DuckDBStore  # noqa: E402

CACHE = Path(
    os.environ.get("SECRETWATCH_BENCH_CACHE", Path.home() / ".cache" / "secretwatch-bench")
)
SHAPES = ("generator", "harness", "real")
# Scenario Vault lines per unit of scale (120 days, seed 1): 2 lines per call; measured
# 167,900 lines at scale 0.25 and 35,260 at 0.01 (people and schedules do not scale).
_FIXED_LINES, _LINES_PER_SCALE = 29_733, 552_667


def _harness(path: Path, lines: int, seed: int) -> int:
    """The scenario's Vault audit log, cut to `lines` lines (its calls' pairs stay whole)."""
    scale = round(max(0.01, (lines * 1.05 - _FIXED_LINES) / _LINES_PER_SCALE), 3)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        scenario_gen.generate(Path(tmp), 1, days=120, scale=scale)
        written = 0
        with (Path(tmp) / "vault" / "audit.log").open("rb") as src, path.open("wb") as out:
            for n, line in enumerate(src):
                if n >= lines:
                    break
                out.write(line)
                written += len(line)
    return written


GENERATORS: dict[str, Callable[[Path, int, int], int]] = {
    "generator": vault_gen.generate,
    "harness": _harness,
    "real": real_gen.generate,
}


def input_file(shape: str, lines: int, seed: int) -> Path:
    """The cached input of `shape`, generated on first use."""
    name = "vault" if shape == "generator" else f"vault-{shape}"
    path = CACHE / f"{name}-{lines}-{seed}.log"
    if not path.exists():
        print(f"generating {lines:,} {shape} lines into {path} ...", flush=True)
        tmp = path.with_suffix(".tmp")
        GENERATORS[shape](tmp, lines, seed)
        tmp.rename(path)
    return path


# Wall time by default; `--clock cpu` counts this process's CPU time instead (all its
# threads, on the one core), which a machine busy with other work disturbs less.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def bare_loads(path: Path) -> tuple[int, float]:
    lines = path.read_bytes().splitlines()
    start = clock()
    loads = orjson.loads
    for line in lines:
        loads(line)
    return len(lines), clock() - start


def full_ingest(path: Path, folder: Path) -> tuple[int, int, float]:
    store = DuckDBStore(folder / "bench.duckdb")
    store.open()
    start = clock()
    summary = Ingestor(store).ingest([str(path)])
    elapsed = clock() - start
    store.close()
    assert summary.records == summary.consumed, summary  # noqa: S101 - every line became an event
    return summary.records, summary.stored, elapsed


def framing(path: Path) -> float:
    start = clock()
    for _ in file_records(path, None, Limits()):
        pass
    return clock() - start


def parsing(path: Path, rows: list[EventRow] | None = None) -> float:
    """The Vault parser over the file (framing included); its events go to `rows`."""
    parser = vault.VaultParser()
    with fewer_gc_passes():
        start = clock()
        for chunk in file_records(path, None, Limits()):
            made = parser.feed(chunk, path.name).rows
            if rows is not None:
                rows += made
        made = parser.flush(path.name).rows
        elapsed = clock() - start
    if rows is not None:
        rows += made
    return elapsed


def _constant_row(entry: object, backend: str | None, event_id: str, *_: object) -> EventRow:
    """`vault.normalize` doing no work: pairing still makes one event per call."""
    fields = (event_id, 0, "vault", "vault", "x", "unknown", None, "other", "", "success")
    return tuple.__new__(EventRow, (*fields, None, None, None, None, None, None))


def parsing_without_normalizing(path: Path) -> float:
    normalize, vault.normalize = vault.normalize, _constant_row
    try:
        return parsing(path)
    finally:
        vault.normalize = normalize


def storing(rows: list[EventRow]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "bench.duckdb")
        store.open()
        start = clock()
        store.write_batch(rows, [])
        elapsed = clock() - start
        store.close()
        return elapsed


def stages(path: Path, repeat: int, a_seconds: float, b_seconds: float) -> None:
    """Where the full ingest's time goes (best of `repeat` runs of each stage)."""
    rows: list[EventRow] = []
    parsing(path, rows)
    best = {"framing": float("inf"), "bare": float("inf"), "parse": float("inf")}
    best["store"] = float("inf")
    for _ in range(repeat):
        best["framing"] = min(best["framing"], framing(path))
        best["bare"] = min(best["bare"], parsing_without_normalizing(path))
        best["parse"] = min(best["parse"], parsing(path))
        best["store"] = min(best["store"], storing(rows))
    normalizing = max(0.0, best["parse"] - best["bare"])
    parts = {
        "framing": best["framing"],
        "decoding and pairing": best["bare"] - best["framing"],
        "normalizing": normalizing,
        "storing": best["store"],
        "the rest": b_seconds - best["parse"] - best["store"],
    }
    print(f"  where (b)'s {b_seconds:.2f} s go, best of {repeat} each:")
    for name, seconds in parts.items():
        share = seconds / b_seconds if b_seconds else 0.0
        print(f"    {name:<22} {seconds:>6.2f} s  {share:>4.0%}")
    room = a_seconds / max(b_seconds - normalizing, 1e-9)
    print(f"  ratio if normalizing cost nothing: {room:.2f}", flush=True)


@dataclass
class Result:
    shape: str
    lines: int
    bytes_per_line: float
    rate_a: float
    rate_b: float
    stored: int

    @property
    def ratio(self) -> float:
        return self.rate_b / self.rate_a


def run_shape(shape: str, lines: int, seed: int, repeat: int, with_stages: bool) -> Result:
    path = input_file(shape, lines, seed)
    size = path.stat().st_size
    mb, per_line = size / 1e6, size / lines
    print(f"[{shape}] {path.name}: {lines:,} lines, {mb:,.0f} MB, {per_line:,.0f} bytes/line")
    # Alternate the two and keep each one's best run: this machine's speed drifts.
    best_a = best_b = float("inf")
    n = records = stored = 0
    for run in range(repeat):
        n, t_loads = bare_loads(path)
        best_a = min(best_a, t_loads)
        with tempfile.TemporaryDirectory() as tmp:
            records, stored, t_ingest = full_ingest(path, Path(tmp))
        best_b = min(best_b, t_ingest)
        rates = f"(a) {n / t_loads:,.0f} lines/s, (b) {records / t_ingest:,.0f} lines/s"
        print(f"  run {run + 1}: {rates}", flush=True)
    result = Result(shape, n, size / n, n / best_a, records / best_b, stored)
    print(f"  (a) bare orjson.loads:  {result.rate_a:>10,.0f} lines/s  ({best_a:.2f} s)")
    detail = f"{best_b:.2f} s, {stored:,} events stored"
    print(f"  (b) full ingest:        {result.rate_b:>10,.0f} lines/s  ({detail})")
    print(f"  ratio (b)/(a): {result.ratio:.2f}  (goal >= 0.60)", flush=True)
    if with_stages:
        stages(path, repeat, best_a, best_b)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=(*SHAPES, "all"), default="all")
    parser.add_argument("--lines", type=int, default=1_000_000, help="per shape (even)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    parser.add_argument("--stages", action="store_true", help="where the ingest's time goes")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.lines < 2 or args.lines % 2:
        parser.error(f"--lines must be an even number >= 2 (request + response); got {args.lines}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    CACHE.mkdir(parents=True, exist_ok=True)
    shapes = SHAPES if args.shape == "all" else (args.shape,)
    results = [
        run_shape(shape, args.lines, args.seed, args.repeat, args.stages) for shape in shapes
    ]
    print()
    print(f"{'shape':<10} {'bytes/line':>10} {'(a) lines/s':>12} {'(b) lines/s':>12} {'ratio':>6}")
    for r in results:
        print(
            f"{r.shape:<10} {r.bytes_per_line:>10,.0f} {r.rate_a:>12,.0f} "
            f"{r.rate_b:>12,.0f} {r.ratio:>6.2f}"
        )


if __name__ == "__main__":
    main()
