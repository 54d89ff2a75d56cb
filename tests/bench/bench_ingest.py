"""Ingest benchmark: full Vault ingest versus bare `orjson.loads`, in one process, one core.

    python tests/bench/bench_ingest.py [--shape all|generator|harness|real] [--lines 1000000]
                                       [--seed 7] [--repeat 3] [--clock wall|cpu]

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

from pipeline.ingest import Ingestor  # noqa: E402
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


def run_shape(shape: str, lines: int, seed: int, repeat: int) -> Result:
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
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=(*SHAPES, "all"), default="all")
    parser.add_argument("--lines", type=int, default=1_000_000, help="per shape (even)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.lines < 2 or args.lines % 2:
        parser.error(f"--lines must be an even number >= 2 (request + response); got {args.lines}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    CACHE.mkdir(parents=True, exist_ok=True)
    shapes = SHAPES if args.shape == "all" else (args.shape,)
    results = [run_shape(shape, args.lines, args.seed, args.repeat) for shape in shapes]
    print()
    print(f"{'shape':<10} {'bytes/line':>10} {'(a) lines/s':>12} {'(b) lines/s':>12} {'ratio':>6}")
    for r in results:
        print(
            f"{r.shape:<10} {r.bytes_per_line:>10,.0f} {r.rate_a:>12,.0f} "
            f"{r.rate_b:>12,.0f} {r.ratio:>6.2f}"
        )


if __name__ == "__main__":
    main()
