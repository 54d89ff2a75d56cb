"""Commands that bring audit records in: `ingest` into the store, `ship` to Kafka, and
`run`, one member of the distributed flow."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, StoreOpt
from pipeline.cli.render import print_summary, progress
from pipeline.cli.session import exit_on_error, fail, load_config
from pipeline.errors import InputError
from pipeline.record import SOURCES
from pipeline.store import make_store, open_store
from pipeline.terminal import inert, log_to_stderr

if TYPE_CHECKING:
    from detectors.alert import Alert
    from pipeline.config import Config, KafkaConfig
    from pipeline.ingest import IngestSummary
    from pipeline.sources.cloudtrail_digest import DigestReport
    from pipeline.store import Store


def ingest(
    paths: Annotated[
        list[str], typer.Argument(help="Files (plain or .gz), folders, or - for stdin.")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"Force a format ({', '.join(SOURCES)}); default: detect per file.",
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-F",
            help="Keep reading as files grow (tail -F), across rotation and restarts.",
        ),
    ] = False,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
    strict: Annotated[
        bool, typer.Option(help="Exit with status 1 if any record was dead-lettered.")
    ] = False,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect",
            help="With --follow: judge events as they are stored (from the trained "
            "baselines, see `secretwatch train`) and raise alerts into the store's outbox.",
        ),
    ] = False,
    deliver: Annotated[
        bool,
        typer.Option(
            help="With --detect: deliver alerts to the configured `sinks` from a thread as "
            "they are raised (--no-deliver leaves them to `secretwatch deliver`).",
        ),
    ] = True,
) -> None:
    """Read audit logs into the store; print what was read, stored, skipped and dead-lettered.

    Ingesting the same input twice stores nothing new. Malformed records never stop a run:
    each goes to the dead-letter record (see `secretwatch dead-letters`).
    """
    from pipeline.ingest import expand_paths  # here: `events` and the rest do not read logs

    if detect and not follow:
        raise fail(InputError("--detect needs --follow; for stored events: secretwatch detect"))
    with exit_on_error():
        cfg = load_config(config)
        if not follow:
            list(expand_paths(paths))  # a missing input fails before a store is created
        with closing(open_store(cfg, store_path, read_only=False)) as store:
            if follow:
                summary = _follow(paths, store, cfg, store_path, fmt, detect, deliver)
            else:
                summary = _ingest_with_progress(paths, store, cfg, fmt)
    print_summary(summary)
    if summary.cloudtrail is not None:
        print_digests(summary.cloudtrail, cfg.ingest.cloudtrail_public_key is not None)
    if strict and summary.dead_lettered:
        raise typer.Exit(1)
    if summary.cloudtrail is not None and summary.cloudtrail.mismatched:
        raise typer.Exit(1)  # stored all the same; the evidence says they were altered


def print_digests(report: DigestReport, keyed: bool) -> None:
    """Which CloudTrail log objects their digests vouch for. Quiet when the logs came
    without digests and no key is configured (integrity validation is off for that trail)."""
    if not (report.digests or keyed or report.mismatched):
        return
    out, shown = consoles.out, 10
    out.print(
        inert(
            f"CloudTrail digests: {report.digests} read; log objects {len(report.verified)} "
            f"verified, {len(report.unverifiable)} unverifiable, {len(report.mismatched)} "
            "mismatched"
        )
    )
    for name in report.verified[:shown]:
        out.print(Text("  verified      ") + inert(name))
    for name, why in report.unverifiable[:shown]:
        out.print(Text("  unverifiable  ") + inert(f"{name}: {why}"))
    for name, what in report.mismatched[:shown]:
        out.print(Text.from_markup("  [bold red]MISMATCHED[/]    ") + inert(f"{name}: {what}"))
    hidden = sum(max(0, len(group) - shown) for group in (
        report.verified, report.unverifiable, report.mismatched))  # fmt: skip
    if hidden:
        out.print(f"  ... and {hidden} more")
    if report.mismatched:
        consoles.err.print(
            Text.from_markup("[bold red]warning:[/] ")
            + inert(
                f"{len(report.mismatched)} CloudTrail log objects or digests do not match their "
                "digests (altered, or signed by another key); their events were stored, exit "
                "status 1"
            )
        )


def _follow(
    paths: list[str],
    store: Store,
    cfg: Config,
    store_path: Path | None,
    fmt: str | None,
    detect: bool,
    deliver: bool,
) -> IngestSummary:
    """`ingest --follow`, with live detection (and delivery from a thread) if asked."""
    from pipeline.bus.follow import follow_files

    log_to_stderr(logging.WARNING)  # follow's warnings, sink failures: inert
    live = None
    if detect:  # imported here: detection loads scikit-learn, which every command would pay
        from pipeline.detection.embedded import EmbeddedDetection

        live = EmbeddedDetection(store, cfg.detection(), on_alerts=_print_alerts)
    if live is not None:
        live.own()
        if deliver and cfg.sinks:
            from pipeline.sinks.embed import start_delivery_thread

            live.delivery = start_delivery_thread(
                lambda: make_store(cfg, store_path, read_only=False), cfg
            )
    on_stored = live.stored if live is not None else None
    before_store = live.anchor if live is not None else None
    try:
        summary = follow_files(
            paths,
            store,
            cfg,
            fmt=fmt,
            console=consoles.err,
            on_stored=on_stored,
            before_store=before_store,
        )
        if live is not None:
            live.snapshot()
    finally:
        if live is not None:
            for exc in live.close():
                consoles.err.print(Text.from_markup("[bold red]delivery stopped:[/] ") + inert(exc))
    return summary


def _print_alerts(alerts: list[Alert]) -> None:
    for alert in alerts:
        consoles.err.print(
            Text.from_markup("[bold red]alert[/] ")
            + inert(f"{alert.severity} {alert.identity}: {alert.explanation}")
        )


def _ingest_with_progress(
    paths: list[str], store: Store, cfg: Config, fmt: str | None
) -> IngestSummary:
    from pipeline.ingest import Ingestor, expand_paths  # here: see `ingest`
    from pipeline.sources.cloudtrail_digest import load_keys

    files = [p for p in expand_paths(paths) if p is not None]
    total = sum(p.stat().st_size for p in files)
    with progress(total, True, total >= 8 << 20) as bar:
        task = bar.add_task("ingesting", total=total)
        key_file = cfg.ingest.cloudtrail_public_key
        ingestor = Ingestor(
            store,
            fmt,
            cfg.backends,
            cfg.ingest.batch_size,
            lambda n: bar.advance(task, n),
            cfg.ingest.limits,
            cfg.ingest.time_window,
            cloudtrail_keys=load_keys(key_file) if key_file is not None else None,
        )
        return ingestor.ingest(paths)


BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap servers (host:port[,host:port]), overriding kafka.bootstrap_servers.",
    ),
]


def _kafka_config(cfg: Config, bootstrap: str | None) -> KafkaConfig:
    """The `kafka:` section (defaults when absent), with --bootstrap applied."""
    from pipeline.config import KafkaConfig

    kcfg = cfg.kafka or KafkaConfig()
    if bootstrap:
        kcfg = kcfg.model_copy(update={"bootstrap_servers": bootstrap.split(",")})
    return kcfg


def ship(
    paths: Annotated[
        list[str], typer.Argument(help="Files (plain or .gz), folders, or - for stdin.")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help=f"Force a format ({', '.join(SOURCES)}); default: detect."
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-F",
            help="Keep shipping as files grow (tail -F); positions in kafka.ship_state.",
        ),
    ] = False,
    config: ConfigOpt = None,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Produce audit records to Kafka unparsed, one raw topic per source
    (kafka.raw_topic_prefix + vault|aws|gcp|azure|k8s), keyed so related records share a
    partition; `secretwatch run` normalizes them. Prints records shipped per topic."""
    from pipeline.bus.kafka import ensure_topics
    from pipeline.ingest import expand_paths
    from pipeline.ship import follow_ship, ship_files

    out = consoles.out
    with exit_on_error():
        cfg = load_config(config)
        kcfg = _kafka_config(cfg, bootstrap)
        # A missing input fails before anything is produced.
        files = [] if follow else [p for p in expand_paths(paths) if p is not None]
        ensure_topics(kcfg)
        if follow:
            summary = follow_ship(paths, cfg, kcfg, fmt, console=consoles.err)
        else:
            total = sum(p.stat().st_size for p in files)
            with progress(total, True, total >= 8 << 20) as bar:
                task = bar.add_task("shipping", total=total)
                summary = ship_files(paths, cfg, kcfg, fmt, lambda n: bar.advance(task, n))
    formats = ", ".join(f"{n} {f}" for f, n in summary.formats.most_common()) or "none recognised"
    out.print(f"[bold]{summary.files}[/] files ({formats})", highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("records read (lines or documents)", f"{summary.records:,}")
    table.add_row("  shipped", f"{summary.consumed:,}")
    table.add_row("  dead-lettered (format not recognised)", f"{summary.dead_records:,}")
    for topic, n in sorted(summary.shipped.items()):
        table.add_row(f"  -> {topic}", f"{n:,}")
    out.print(table)
    if summary.files_skipped:
        shown = ", ".join(summary.files_skipped[:3])
        out.print(
            inert(
                f"{len(summary.files_skipped)} files not read (documentation, DuckDB "
                f"stores): {shown}"
            )
        )


def run(
    config: ConfigOpt = None,
    bootstrap: BootstrapOpt = None,
    member: Annotated[
        str | None, typer.Option(help="This member's name in logs and state (default host-pid).")
    ] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(help="Append per-batch delays (produce->stored, ->alert) as JSON lines."),
    ] = None,
) -> None:
    """One consumer-group member of the distributed flow: normalize the raw topics into the
    events topic (keyed by identity), then store, learn and judge the events of the
    partitions it owns. Start as many as there are partitions; SIGTERM stops one cleanly."""
    from pipeline.run import configure_logging, run_member, wait_for_store

    configure_logging()
    with exit_on_error():
        cfg = load_config(config)
        kcfg = _kafka_config(cfg, bootstrap)
        name = str(getattr(cfg.store, "url", None) or getattr(cfg.store, "path", "?"))
        opened = wait_for_store(lambda: open_store(cfg, None, read_only=False), name, consoles.err)
        with closing(opened) as store:
            status = run_member(cfg, kcfg, store, name, consoles.err, member, metrics)
    raise typer.Exit(status)
