"""Replay: read audit files straight into memory, learn baselines before a cut-off, then feed
the rest through detection in time-ordered batches, as the live stream would.

No store is needed: the evaluation harness and users trying secretwatch on a log export run
it over files. `load_events` is also what benchmarks use to read a scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from detectors.alert import Alert
from detectors.engine import Detection, train
from detectors.events import prepare
from detectors.settings import DetectorsConfig
from detectors.stepping import Sliced, cover, step_batches
from pipeline.config import IngestConfig
from pipeline.ingest import Ingestor, IngestSummary
from pipeline.record import EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store.base import Checkpoint
from pipeline.store.rows import dedupe, rows_to_arrow


class MemorySink:
    """Collects what the ingestor would write to a store (a stand-in store for replay)."""

    def __init__(self) -> None:
        self.rows: list[EventRow] = []
        self.dead: list[DeadLetter] = []

    def write_batch(
        self,
        rows: list[EventRow],
        dead: Sequence[DeadLetter] = (),
        checkpoints: Sequence[Checkpoint] = (),
    ) -> int:
        self.rows.extend(rows)
        self.dead.extend(dead)
        return len(rows)


def load_events(
    paths: Iterable[str],
    fmt: str | None = None,
    backends: dict[str, str] | None = None,
    on_advance: Callable[[int], None] | None = None,
    settings: IngestConfig | None = None,
) -> tuple[pd.DataFrame, IngestSummary, list[DeadLetter]]:
    """Parse `paths` into one events frame (the store's columns, `ts` as UTC timestamps),
    sorted by time, one row per event id; `settings` gives the caps and the plausible time
    window (events outside it are dead letters, as in `ingest`)."""
    sink = MemorySink()
    settings = settings or IngestConfig()
    summary = Ingestor(
        sink,  # type: ignore[arg-type]  # an event log that keeps only what is written
        fmt,
        backends,
        on_advance=on_advance,
        limits=settings.limits,
        window=settings.time_window,
    ).ingest(paths)
    rows = dedupe(sink.rows)
    frame = rows_to_arrow(rows).to_pandas()
    frame = frame.sort_values(["ts", "event_id"], kind="stable", ignore_index=True)
    return frame, summary, sink.dead


def replay(
    events: pd.DataFrame,
    train_until_us: int,
    cfg: DetectorsConfig,
    on_batch: Callable[[int], None] | None = None,
) -> Detection:
    """Learn from the events before `train_until_us`, then stream the rest through
    detection in `cfg.batch_minutes` batches aligned to the cut-off, in time order."""
    ev = prepare(events, cfg.timezone, cfg.window_minutes)
    split = int(np.searchsorted(ev.ts_us, train_until_us))
    detection = Detection(train(ev.slice(0, split), cfg, train_until_us), cfg)
    step = cfg.batch_minutes * 60_000_000
    stop = cover(train_until_us, int(ev.ts_us[-1]), step) if len(ev) else train_until_us
    for done in step_batches(detection, Sliced(ev, split), train_until_us, stop, step):
        if on_batch is not None:
            on_batch(len(done.events))
    return detection


def write_alerts(alerts: Iterable[Alert], path: Path) -> int:
    """One JSON alert per line, in time order; returns how many."""
    count = 0
    with path.open("wb") as out:
        for alert in alerts:
            out.write(orjson.dumps(alert.model_dump(mode="json")) + b"\n")
            count += 1
    return count
