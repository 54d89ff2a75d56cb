"""Replay benchmark: `secretwatch replay` versus the foundation's ingest, in one process, one core.

    python tests/bench/bench_replay.py [--events 1000000 | --scale F] [--seed 7] [--repeat 2]
        [--profile]

Input: a labelled scenario from `scenario_gen.py` (Vault audit log plus CloudTrail files),
generated once and cached. (a) ingests the scenario into a fresh DuckDB file: read, parse and
store. (b) replays it exactly as `secretwatch replay` does: `load_events` (parse), `replay`
learning from the first 75% of the time-ordered events and detecting on the rest, then the
incidents as alerts (train+detect), then `write_alerts` to a file (write). Goal: (b) takes at
most 3x (a)'s time. The process is pinned to one CPU so DuckDB's threads cannot make (a) look
faster than one core allows; (a) and (b) alternate and each one's best run counts.
`--profile` then profiles one more replay's train+detect phase (top 15 by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario_gen import generate  # noqa: E402

from pipeline.config import Config, load_config  # noqa: E402
from pipeline.detection.replay import load_events, replay, write_alerts  # noqa: E402
from pipeline.ingest import Ingestor  # noqa: E402
from pipeline.store.duckdb import DuckDBStore  # noqa: E402

CACHE = Path(
    os.environ.get("SECRETWATCH_BENCH_CACHE", Path.home() / ".cache" / "secretwatch-bench")
)
# `scale` multiplies machine traffic only; people and schedules stay put. Measured with
# scenario_gen (120 days): 28,837 events at scale 0.01 and 370,213 at 1.0.
FIXED_EVENTS, EVENTS_PER_SCALE = 25_400, 344_800
TRAIN_SHARE = 0.75


@dataclass
class ReplayRun:
    events: int
    trained: int
    replayed: int
    alerts: int
    parse: float
    detect: float
    write: float

    @property
    def total(self) -> float:
        return self.parse + self.detect + self.write


def scale_for(events: int) -> float:
    return round(max(0.001, (events - FIXED_EVENTS) / EVENTS_PER_SCALE), 3)


def scenario(scale: float, seed: int) -> Path:
    """The cached scenario folder for `scale` and `seed`, generated on first use."""
    folder = CACHE / f"scenario-{scale:g}-{seed}"
    if not (folder / "labels.json").exists():
        print(f"generating the scenario at scale {scale:g} into {folder} ...", flush=True)
        began = time.perf_counter()
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        generate(tmp, seed, days=120, scale=scale)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        print(f"  generated in {time.perf_counter() - began:.0f} s", flush=True)
    return folder


def full_ingest(paths: list[str], folder: Path) -> tuple[int, float]:
    """(a): events stored, seconds."""
    store = DuckDBStore(folder / "bench.duckdb")
    store.open()
    start = time.perf_counter()
    summary = Ingestor(store).ingest(paths)
    elapsed = time.perf_counter() - start
    store.close()
    assert not summary.dead_lettered and not summary.skipped_records, summary
    return summary.stored, elapsed


def cut_at_share(frame: pd.DataFrame) -> int:
    """Microseconds of the event at TRAIN_SHARE of the time-ordered events."""
    return int(frame["ts"].iloc[int(len(frame) * TRAIN_SHARE)].value // 1000)


def full_replay(
    paths: list[str], folder: Path, cfg: Config, profile: cProfile.Profile | None = None
) -> ReplayRun:
    """(b) as `secretwatch replay` runs it: parse, train+detect, write."""
    t0 = time.perf_counter()
    frame, summary, dead = load_events(paths, None, cfg.backends)
    t1 = time.perf_counter()
    cut_us = cut_at_share(frame)
    if profile is not None:
        profile.enable()
    detection = replay(frame, cut_us, cfg.detectors)
    found = [i.alert() for i in detection.incidents()]
    if profile is not None:
        profile.disable()
    t2 = time.perf_counter()
    written = write_alerts(found, folder / "alerts.jsonl")
    t3 = time.perf_counter()
    assert not dead, dead[:3]
    later = int((frame["ts"] >= pd.Timestamp(cut_us, unit="us", tz="UTC")).sum())
    return ReplayRun(len(frame), len(frame) - later, later, written, t1 - t0, t2 - t1, t3 - t2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, default=1_000_000, help="pick the scale for ~N")
    size.add_argument("--scale", type=float, help="scenario scale (overrides --events)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--profile", action="store_true", help="profile one train+detect")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    CACHE.mkdir(parents=True, exist_ok=True)
    scale = args.scale if args.scale is not None else scale_for(args.events)
    folder = scenario(scale, args.seed)
    paths = [str(folder / "vault"), str(folder / "aws")]
    size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    print(f"input: scenario scale {scale:g}, seed {args.seed}, {size_mb:,.0f} MB in {folder}")
    cfg = load_config(None)

    # Alternate the two and keep each one's best run: this machine's speed drifts.
    best_a, best_b = float("inf"), None
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            stored, t_ingest = full_ingest(paths, Path(tmp))
        best_a = min(best_a, t_ingest)
        gc.collect()
        with tempfile.TemporaryDirectory() as tmp:
            b = full_replay(paths, Path(tmp), cfg)
        gc.collect()
        if best_b is None or b.total < best_b.total:
            best_b = b
        split = f"parse {b.parse:.1f} + train+detect {b.detect:.1f} + write {b.write:.2f}"
        print(f"  run {run + 1}: (a) {t_ingest:.1f} s, (b) {b.total:.1f} s ({split})", flush=True)
    assert best_b is not None
    if stored != best_b.events:
        print(f"warning: ingest stored {stored:,} events but replay parsed {best_b.events:,}")
    n = best_b.events
    print(f"events: {n:,} ({best_b.trained:,} trained on, {best_b.replayed:,} replayed)")
    print(f"(a) ingest into DuckDB: {best_a:7.1f} s  {stored / best_a:>9,.0f} events/s")
    print(f"(b) replay:             {best_b.total:7.1f} s  {n / best_b.total:>9,.0f} events/s")
    print(
        f"    parse {best_b.parse:.1f} s, train+detect {best_b.detect:.1f} s, "
        f"write {best_b.write:.2f} s; {best_b.alerts:,} alerts written"
    )
    print(f"ratio (b)/(a): {best_b.total / best_a:.2f}  (goal <= 3.0)", flush=True)

    if args.profile:
        gc.collect()
        profile = cProfile.Profile()
        with tempfile.TemporaryDirectory() as tmp:
            full_replay(paths, Path(tmp), cfg, profile)
        print("\nprofile of one train+detect (top 15 by cumulative time):")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
