"""`secretwatch serve`: the long-running service, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import logging
import signal
import threading

import typer

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, StoreOpt
from pipeline.cli.session import exit_on_error, load_config
from pipeline.errors import ConfigError
from pipeline.terminal import inert

CHECK_SECONDS = 1.0  # how often the main thread looks whether the reader still runs


def serve(
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Run every configured collector, store what they receive, detect and deliver alerts,
    and answer /healthz, /readyz, /metrics and queries on `api.listen`, until SIGTERM or
    Ctrl-C; then finish the work in flight and exit 0."""
    from pipeline.ingest import GC_THRESHOLDS
    from pipeline.run import configure_logging
    from pipeline.service.runtime import Service

    configure_logging()
    with exit_on_error():
        cfg = load_config(config)
        if not cfg.collectors:
            raise ConfigError(f"{config}: no collectors: list at least one under `collectors:`")
        service = Service(cfg, store_path)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        service.start()
        # What start-up built (modules, config, the API) lives as long as the process:
        # frozen, full collections stop walking it (pauses of 0.1-0.3 s every few seconds).
        gc.freeze()
        # Collections spaced out as `ingest` spaces them: the reader's batches (up to
        # `follow.BATCH_EVENTS` events) are millions of short-lived objects in no cycle.
        gc.set_threshold(*GC_THRESHOLDS)
    for name, where in service.addresses():
        consoles.out.print(inert(f"collector {name}: {where}"), soft_wrap=True)
    if service.api_address:
        consoles.out.print(inert(f"api: {service.api_address}"), soft_wrap=True)
    while not stop.wait(CHECK_SECONDS):
        if not service.alive:
            logging.getLogger(__name__).error("event=reader_stopped")
            break
    failed = not service.alive and not stop.is_set()
    errors = service.stop()
    if failed or errors:
        raise typer.Exit(1)
