"""Commands that judge events: `replay` over a log export, `train` and `detect` over the
store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, StoreOpt, parse_when
from pipeline.cli.render import print_alerts, print_summary, progress
from pipeline.cli.session import exit_on_error, load_config, session
from pipeline.errors import InputError
from pipeline.paths import make_folder
from pipeline.record import SOURCES
from pipeline.terminal import inert


def replay(
    inputs: Annotated[
        list[str],
        typer.Option("--input", "-i", help="Audit files or folders; repeat for several."),
    ],
    train_until: Annotated[
        str,
        typer.Option(help="Learn from events before this time (ISO-8601, UTC if no zone)."),
    ],
    alerts: Annotated[Path, typer.Option(help="Write alerts here, one JSON object per line.")],
    config: ConfigOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help=f"Force a format ({', '.join(SOURCES)})."),
    ] = None,
) -> None:
    """Learn baselines from the events before --train-until, then feed the later events
    through detection in time order, in batches, as the live stream would; write the alerts.

    No store is used or changed: this is for trying secretwatch on a log export and for
    evaluating detectors on labelled scenarios.
    """
    from pipeline.detection.replay import load_events, write_alerts
    from pipeline.detection.replay import replay as run_replay
    from pipeline.ingest import expand_paths  # here: `events` and the rest read no logs

    cut = parse_when(train_until, "--train-until")
    assert cut is not None  # noqa: S101 - a required option
    with exit_on_error():
        cfg = load_config(config)
        files = [p for p in expand_paths(inputs) if p is not None]
        try:  # before the work: a folder that cannot be made fails at once
            make_folder(alerts.parent)
        except OSError as exc:
            raise InputError(f"--alerts {alerts}: {exc.strerror or exc}") from None
        total = sum(p.stat().st_size for p in files)
        with progress(total, True, total >= 8 << 20) as bar:
            task = bar.add_task("reading", total=total)
            events, summary, _ = load_events(
                inputs, fmt, cfg.backends, lambda n: bar.advance(task, n), cfg.ingest
            )
    print_summary(summary)
    cut_us = int(cut.timestamp() * 1_000_000)
    later = int((events["ts"] >= cut).sum())
    with progress(later, False, later >= 100_000) as bar:
        task = bar.add_task("detecting", total=later)
        detection = run_replay(events, cut_us, cfg.detection(), lambda n: bar.advance(task, n))
    found = [i.alert() for i in detection.incidents()]
    write_alerts(found, alerts)
    base = detection.base
    shown = (
        f"trained on {len(events) - later:,} events before {cut.isoformat()} "
        f"({len(base)} identities now known), replayed {later:,}; "
        f"{len(found)} alert{'' if len(found) == 1 else 's'} written to {alerts}"
    )
    consoles.out.print(inert(shown))
    print_alerts(found)


def train(
    until: Annotated[
        str | None,
        typer.Option(help="Learn from events before this time (ISO-8601 or age; default now)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Ignore events before this time (default: all).")
    ] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Learn every identity's baseline from the stored events and keep it in the store;
    `secretwatch detect` continues from --until. Replaces baselines trained before."""
    import numpy as np  # here, with detection (which loads it anyway): not for every command

    from pipeline.detection.store import train_store

    cut = parse_when(until, "--until") or datetime.now(UTC)
    with session(config, store_path, read_only=False) as (cfg, store):
        with consoles.err.status("learning baselines"):
            base = train_store(store, cfg.detection(), cut, parse_when(since, "--since"))
    cold = int(
        (
            ~base.warm(
                np.arange(len(base)),
                base.trained_until_us,
                cfg.detectors.cold_start.min_active_days,
                cfg.detectors.cold_start.min_span_days,
            )
        ).sum()
    )
    consoles.out.print(
        f"baselines version {base.version}: {len(base)} identities learned from events before "
        f"{cut.isoformat()} ({cold} still in cold start); multivariate model "
        f"{'fitted' if base.model is not None else 'not fitted (too little history)'}"
    )


def detect(
    until: Annotated[
        str | None,
        typer.Option(help="Judge events before this time (default: all stored events)."),
    ] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Judge the stored events that came after the last run (or after training) against
    the baselines, update them, and store the alerts; prints the alerts raised or grown."""
    from pipeline.detection.store import detect_store

    with session(config, store_path, read_only=False) as (cfg, store):
        with consoles.err.status("detecting"):
            horizon = datetime.now(UTC) + cfg.ingest.time_window.max_future
            found = detect_store(
                store, cfg.detection(), parse_when(until, "--until"), horizon=horizon
            )
    consoles.out.print(f"{len(found)} alert{'' if len(found) == 1 else 's'} raised or updated")
    print_alerts(found)
