"""The `secretwatch` command line: wiring only; the work lives in ingest, follow and store."""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pipeline.config import Config, KafkaConfig, load_config
from pipeline.errors import ConfigError, InputError, SecretwatchError
from pipeline.ingest import Ingestor, IngestSummary, expand_paths
from pipeline.paths import make_folder
from pipeline.record import ACTIONS, OUTCOMES, SOURCES
from pipeline.reports.settings import ReportConfig
from pipeline.store import EventFilter, Store, make_store, open_store
from pipeline.store.base import GROUPABLE
from pipeline.terminal import inert, json_line, log_to_stderr

if TYPE_CHECKING:
    from pipeline.sinks.embed import DeliveryHandle

app = typer.Typer(
    help=(
        "secretwatch: audit and anomaly detection for access to secrets.\n\n"
        "Reads audit logs of HashiCorp Vault/OpenBao, AWS CloudTrail (Secrets Manager, SSM, "
        "KMS), Google Secret Manager, Azure Key Vault and Kubernetes, normalizes every access "
        "into one record, and keeps it in a store (embedded DuckDB by default)."
    ),
    no_args_is_help=True,
    add_completion=False,
)
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config (default: $SECRETWATCH_CONFIG, then config/default.yaml).",
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="The store, overriding the config: a DuckDB file, or an Elasticsearch URL when "
        "`store.type` is elasticsearch.",
    ),
]


def _fail(exc: SecretwatchError) -> typer.Exit:
    err.print(Text.from_markup("[bold red]error:[/] ") + inert(exc, keep="\n"))
    return typer.Exit(2)


def _open_store(config: Config, store_path: Path | None, read_only: bool) -> Store:
    return open_store(config, store_path, read_only)


@app.command()
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
    if detect and not follow:
        raise _fail(InputError("--detect needs --follow; for stored events: secretwatch detect"))
    try:
        cfg = load_config(config)
        if not follow:
            list(expand_paths(paths))  # a missing input fails before a store is created
        store = _open_store(cfg, store_path, read_only=False)
        try:
            if follow:
                from pipeline.bus.follow import follow_files

                log_to_stderr(logging.WARNING)  # follow's warnings, sink failures: inert
                live = _Live(store, cfg) if detect else None
                if live is not None and deliver and cfg.sinks:
                    from pipeline.sinks.embed import start_delivery_thread

                    live.delivery = start_delivery_thread(
                        lambda: make_store(cfg, store_path, read_only=False), cfg
                    )
                on_stored = live.feed if live is not None else None
                try:
                    summary = follow_files(
                        paths, store, cfg, fmt=fmt, console=err, on_stored=on_stored
                    )
                    if live is not None:
                        live.detection.snapshot()
                finally:
                    if live is not None:
                        live.close()
            else:
                summary = _ingest_with_progress(paths, store, cfg, fmt)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    print_summary(summary)
    if strict and summary.dead_lettered:
        raise typer.Exit(1)


class _Live:
    """Live detection inside `ingest --follow --detect`: every identity is this process's."""

    def __init__(self, store: Store, cfg: Config) -> None:
        from pipeline.live import LiveDetection

        self.detection = LiveDetection(store, cfg.detectors, "embedded")
        self.detection.assign(lambda identity: "embedded")
        self.delivery: DeliveryHandle | None = None  # set when sinks are delivered here

    def feed(self, rows: list) -> None:
        alerts = self.detection.process(rows, stored=True)
        for alert in alerts:
            err.print(
                Text.from_markup("[bold red]alert[/] ")
                + inert(f"{alert.severity} {alert.identity}: {alert.explanation}")
            )
        if alerts and self.delivery is not None:
            self.delivery.wake()  # deliver now, not at the next poll

    def close(self) -> None:
        """Stop delivering once what is in flight is recorded; what is left stays in the
        outbox for the next run (or `secretwatch deliver`)."""
        if self.delivery is not None:
            self.delivery.stop()
            for exc in self.delivery.errors:
                err.print(Text.from_markup("[bold red]delivery stopped:[/] ") + inert(exc))


BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap servers (host:port[,host:port]), overriding kafka.bootstrap_servers.",
    ),
]


def _kafka_config(cfg: Config, bootstrap: str | None) -> KafkaConfig:
    """The `kafka:` section (defaults when absent), with --bootstrap applied."""
    kcfg = cfg.kafka or KafkaConfig()
    if bootstrap:
        kcfg = kcfg.model_copy(update={"bootstrap_servers": bootstrap.split(",")})
    return kcfg


@app.command()
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
    from pipeline.ship import follow_ship, ship_files

    try:
        cfg = load_config(config)
        kcfg = _kafka_config(cfg, bootstrap)
        # A missing input fails before anything is produced.
        files = [] if follow else [p for p in expand_paths(paths) if p is not None]
        ensure_topics(kcfg)
        if follow:
            summary = follow_ship(paths, cfg, kcfg, fmt, console=err)
        else:
            total = sum(p.stat().st_size for p in files)
            with _progress(total, True, total >= 8 << 20) as progress:
                task = progress.add_task("shipping", total=total)
                summary = ship_files(paths, cfg, kcfg, fmt, lambda n: progress.advance(task, n))
    except SecretwatchError as exc:
        raise _fail(exc) from None
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


@app.command()
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
    try:
        cfg = load_config(config)
        kcfg = _kafka_config(cfg, bootstrap)
        name = str(getattr(cfg.store, "url", None) or getattr(cfg.store, "path", "?"))
        store = wait_for_store(lambda: _open_store(cfg, None, read_only=False), name, err)
        try:
            status = run_member(cfg, kcfg, store, name, err, member, metrics)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    raise typer.Exit(status)


def _ingest_with_progress(
    paths: list[str], store: Store, cfg: Config, fmt: str | None
) -> IngestSummary:
    files = [p for p in expand_paths(paths) if p is not None]
    total = sum(p.stat().st_size for p in files)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=total < 8 << 20,
    )
    with progress:
        task = progress.add_task("ingesting", total=total)
        ingestor = Ingestor(
            store,
            fmt,
            cfg.backends,
            cfg.ingest.batch_size,
            lambda n: progress.advance(task, n),
            cfg.ingest.limits,
            cfg.ingest.time_window,
        )
        return ingestor.ingest(paths)


def _progress(total: int, unit_bytes: bool, show: bool) -> Progress:
    columns = [
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn() if unit_bytes else "{task.completed:,.0f}/{task.total:,.0f}",
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=err, transient=True, disable=not show)


@app.command()
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
    from pipeline.replay import load_events, write_alerts
    from pipeline.replay import replay as run_replay

    cut = parse_when(train_until, "--train-until")
    assert cut is not None  # noqa: S101 - a required option
    try:
        cfg = load_config(config)
        files = [p for p in expand_paths(inputs) if p is not None]
        try:  # before the work: a folder that cannot be made fails at once
            make_folder(alerts.parent)
        except OSError as exc:
            raise InputError(f"--alerts {alerts}: {exc.strerror or exc}") from None
        total = sum(p.stat().st_size for p in files)
        with _progress(total, True, total >= 8 << 20) as progress:
            task = progress.add_task("reading", total=total)
            events, summary, _ = load_events(
                inputs, fmt, cfg.backends, lambda n: progress.advance(task, n), cfg.ingest
            )
    except SecretwatchError as exc:
        raise _fail(exc) from None
    print_summary(summary)
    cut_us = int(cut.timestamp() * 1_000_000)
    later = int((events["ts"] >= cut).sum())
    with _progress(later, False, later >= 100_000) as progress:
        task = progress.add_task("detecting", total=later)
        detection = run_replay(events, cut_us, cfg.detectors, lambda n: progress.advance(task, n))
    found = [i.alert() for i in detection.incidents()]
    write_alerts(found, alerts)
    base = detection.base
    shown = (
        f"trained on {len(events) - later:,} events before {cut.isoformat()} "
        f"({len(base)} identities now known), replayed {later:,}; "
        f"{len(found)} alert{'' if len(found) == 1 else 's'} written to {alerts}"
    )
    out.print(inert(shown))
    print_alerts(found)


@app.command("train")
def train_cmd(
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
    from pipeline.detect import train_store

    cut = parse_when(until, "--until") or datetime.now(UTC)
    try:
        cfg = load_config(config)
        store = _open_store(cfg, store_path, read_only=False)
        try:
            with err.status("learning baselines"):
                base = train_store(store, cfg.detectors, cut, parse_when(since, "--since"))
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
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
    out.print(
        f"baselines version {base.version}: {len(base)} identities learned from events before "
        f"{cut.isoformat()} ({cold} still in cold start); multivariate model "
        f"{'fitted' if base.model is not None else 'not fitted (too little history)'}"
    )


@app.command()
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
    from pipeline.detect import detect_store

    try:
        cfg = load_config(config)
        store = _open_store(cfg, store_path, read_only=False)
        try:
            with err.status("detecting"):
                horizon = datetime.now(UTC) + cfg.ingest.time_window.max_future
                found = detect_store(
                    store, cfg.detectors, parse_when(until, "--until"), horizon=horizon
                )
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    out.print(f"{len(found)} alert{'' if len(found) == 1 else 's'} raised or updated")
    print_alerts(found)


def print_alerts(alerts: list, limit: int = 20) -> None:  # noqa: ANN001 - detectors.alert.Alert
    """Alerts, most severe first: one headline and the explanation each."""
    from detectors.settings import SEVERITIES

    colours = {"low": "cyan", "medium": "yellow", "high": "red", "critical": "bold red"}
    ranked = sorted(alerts, key=lambda a: (-SEVERITIES.index(a.severity), a.timestamp))
    for a in ranked[:limit]:
        identity = inert(a.identity)
        identity.stylize("bold")
        out.print(Text.assemble(
            (f"{a.severity.upper():8}", colours[a.severity]), f" {a.timestamp:%Y-%m-%d %H:%M}Z ",
            identity, inert(f" ({', '.join(a.detectors)}; {a.evidence_count} events; {a.id})"),
        ))  # fmt: skip
        out.print(Text(" " * 9) + inert(a.explanation))
    if len(ranked) > limit:
        out.print(f"... and {len(ranked) - limit} more")


def print_summary(s: IngestSummary) -> None:
    """The run's accounting: every record read ends up in events, skipped or dead-lettered."""
    formats = ", ".join(f"{n} {f}" for f, n in s.formats.most_common()) or "none recognised"
    out.print(Text.from_markup(f"[bold]{s.files}[/] files ") + inert(f"({formats})"))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row(
        "records read (audit records: lines, or each record of a document)", f"{s.records:,}"
    )
    table.add_row("  made events", f"{s.consumed:,}")
    table.add_row("  held nothing about secrets", f"{s.skipped_records:,}")
    table.add_row("  dead-lettered", f"{s.dead_records:,}")
    table.add_row("events", f"{s.events + s.quarantined:,}")
    table.add_row("  stored (new)", f"{s.stored:,}")
    table.add_row("  already stored", f"{s.duplicates:,}")
    table.add_row("  quarantined (implausible time: dead letters)", f"{s.quarantined:,}")
    table.add_row("audit entries skipped (not about secrets)", f"{sum(s.skipped.values()):,}")
    out.print(table)
    for reason, n in s.skipped.most_common(5):  # reasons and file names come from the logs
        out.print(inert(f"  {n:,} x {reason}"))
    if s.dead:
        out.print(f"[yellow]{s.dead_lettered:,} dead letters[/] (see `secretwatch dead-letters`):")
        for reason, n in s.dead.most_common(5):
            out.print(inert(f"  {n:,} x {reason}"))
        for letter in s.dead_examples[:3]:
            out.print(inert(f"  e.g. {letter.where()}: {letter.reason}"))
    if s.files_skipped:
        shown = ", ".join(s.files_skipped[:3])
        not_read = f"{len(s.files_skipped)} files not read (documentation, DuckDB stores)"
        out.print(inert(f"{not_read}: {shown}"))


_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str | None, name: str) -> datetime | None:
    """ISO-8601 (UTC if no zone) or a relative age such as `24h`, `7d`."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not ISO-8601 or an age like 24h / 7d", param_hint=name
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _filter(since, until, identity, secret, action, outcome, source) -> EventFilter:  # noqa: ANN001
    for value, valid, name in (
        (action, ACTIONS, "--action"),
        (outcome, OUTCOMES, "--outcome"),
        (source, SOURCES, "--source"),
    ):
        if value is not None and value not in valid:
            raise typer.BadParameter(
                f"{value!r}; choose one of {', '.join(valid)}", param_hint=name
            )
    return EventFilter(
        parse_when(since, "--since"),
        parse_when(until, "--until"),
        identity,
        secret,
        action,
        outcome,
        source,
    )


Since = Annotated[
    str | None, typer.Option(help="From this time (ISO-8601, or an age like 24h, 7d).")
]
Until = Annotated[str | None, typer.Option(help="Before this time (ISO-8601 or age).")]
IdentityOpt = Annotated[str | None, typer.Option(help="Identity, `*` wildcards allowed.")]
SecretOpt = Annotated[
    str | None, typer.Option(help="Canonical secret path, `*` wildcards allowed.")
]
ActionOpt = Annotated[str | None, typer.Option(help=f"One of {', '.join(ACTIONS)}.")]
OutcomeOpt = Annotated[str | None, typer.Option(help=f"One of {', '.join(OUTCOMES)}.")]
SourceOpt = Annotated[str | None, typer.Option(help=f"One of {', '.join(SOURCES)}.")]


@app.command()
def events(
    since: Since = None,
    until: Until = None,
    identity: IdentityOpt = None,
    secret: SecretOpt = None,
    action: ActionOpt = None,
    outcome: OutcomeOpt = None,
    source: SourceOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many events (0: all).")] = 50,
    newest: Annotated[bool, typer.Option(help="Newest first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Show stored events, filtered, as a table or JSON lines."""
    where = _filter(since, until, identity, secret, action, outcome, source)
    try:
        store = _open_store(load_config(config), store_path, read_only=True)
        try:
            frame = store.events(where, limit=limit or None, newest_first=newest)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    if as_json:
        for record in frame.to_dict(orient="records"):
            clean = {"event_id": record.pop("event_id"), "timestamp": record.pop("ts").isoformat()}
            clean.update(
                (k, None if _cell(v) == "-" and v != "-" else v) for k, v in record.items()
            )
            sys.stdout.buffer.write(json_line(clean))
        return
    table = Table(title=f"{len(frame)} events")
    for name in ("time (UTC)", "source", "identity", "action", "secret", "outcome", "source ip"):
        table.add_column(name, overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(  # every value from the logs, printed inert
            row.ts.strftime("%Y-%m-%d %H:%M:%S"),
            inert(row.source),
            inert(row.identity),
            inert(row.action),
            inert(_cell(row.secret)),
            inert(row.outcome),
            inert(_cell(row.source_ip)),
        )
    out.print(table)


@app.command()
def stats(
    by: Annotated[
        list[str] | None, typer.Option(help=f"Group by ({', '.join(GROUPABLE)}); repeatable.")
    ] = None,
    since: Since = None,
    until: Until = None,
    identity: IdentityOpt = None,
    secret: SecretOpt = None,
    action: ActionOpt = None,
    outcome: OutcomeOpt = None,
    source: SourceOpt = None,
    limit: Annotated[int, typer.Option(help="Rows per table.")] = 15,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Event counts per source, identity, secret and outcome (or what --by names)."""
    groups = by or ["source", "identity", "secret", "outcome"]
    for name in groups:
        if name not in GROUPABLE:
            raise typer.BadParameter(
                f"{name!r}; choose from {', '.join(GROUPABLE)}", param_hint="--by"
            )
    where = _filter(since, until, identity, secret, action, outcome, source)
    try:
        store = _open_store(load_config(config), store_path, read_only=True)
        try:
            total = store.count(where)
            frames = {name: store.stats(name, where, limit) for name in groups}
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    out.print(f"[bold]{total:,}[/] events")
    for name, frame in frames.items():
        table = Table(title=f"by {name}")
        for col in (name, "events", "denied", "first seen", "last seen"):
            table.add_column(col, overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(
                inert(_cell(row[0])),
                f"{row.events:,}",
                f"{row.denied:,}",
                row.first_seen.strftime("%Y-%m-%d %H:%M"),
                row.last_seen.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)


@app.command()
def report(
    quarter: Annotated[
        str | None, typer.Option(help="Review period as a quarter, e.g. 2026Q3.")
    ] = None,
    first: Annotated[
        str | None, typer.Option("--from", help="First day of the period (YYYY-MM-DD).")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Last day of the period, inclusive.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: data/reports/access-review-PERIOD)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Time zone of the period (default: report.timezone).")
    ] = None,
    owners: Annotated[Path | None, typer.Option(help="Owners file (report.owners).")] = None,
    inventory: Annotated[
        Path | None, typer.Option(help="Inventory file (report.inventory).")
    ] = None,
    policies: Annotated[
        Path | None, typer.Option(help="Folder of Vault ACL policies (report.policies_dir).")
    ] = None,
    vault_addr: Annotated[
        str | None,
        typer.Option(help="Read ACL policies from this Vault, token from $VAULT_TOKEN."),
    ] = None,
    pdf: Annotated[bool, typer.Option(help="Also write report.pdf (needs WeasyPrint).")] = False,
    verify: Annotated[
        Path | None,
        typer.Option(help="Only check a report folder against its manifest; exit 1 if not."),
    ] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Quarterly access review: HTML (summary page, charts), CSV and JSON of every table,
    and manifest.json with the SHA-256 of each file, the parameters and the store state.

    Sections: data-source coverage, secrets and accessors, identities, granted versus used
    access, unused secrets, rotation, ownership, alerts and denials, control mapping.
    """
    from pipeline.reports import manifest
    from pipeline.reports import period as periods
    from pipeline.reports.run import generate

    if verify is not None:
        try:
            problems = manifest.verify(verify)
        except SecretwatchError as exc:
            raise _fail(exc) from None
        for problem in problems:  # names from the folder: printed as inert text
            err.print(inert(problem), style="red")
        if problems:
            raise typer.Exit(1)
        out.print(f"{verify}: every file matches {manifest.NAME}", markup=False)
        return
    try:
        cfg = load_config(config)
        overrides = {"owners": owners, "inventory": inventory, "policies_dir": policies,
                     "vault_addr": vault_addr, "timezone": timezone}  # fmt: skip
        settings = _report_settings(cfg, overrides)
        if quarter is not None and first is None and last is None:
            chosen = periods.quarter(quarter, settings.timezone)
        elif quarter is None and first is not None and last is not None:
            chosen = periods.days(first, last, settings.timezone)
        else:
            raise InputError("give either --quarter 2026Q3, or both --from and --to")
        folder = out_dir or Path("data") / "reports" / f"access-review-{chosen.slug}"
        store = _open_store(cfg, store_path, read_only=True)
        try:
            with _progress(9, False, True) as progress:
                task = progress.add_task("report", total=9)

                def step(name: str) -> None:
                    progress.update(task, description=name, advance=1)

                done = generate(store, cfg.store.type, chosen, settings, folder, pdf, step)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    s = done.review.summary
    out.print(
        f"[bold]{chosen.label}[/] ({chosen.timezone}): {s['identities_active']} identities, "
        f"{s['secrets_read']}/{s['secrets_known']} secrets read, {s['reads']:,} reads; "
        f"findings: {s['unused_secrets']} unused, "
        f"{s['rotation_overdue'] + s['rotation_no_evidence']} not rotated, "  # type: ignore[operator]
        f"{s['overbroad_identities']} over-broad, {s['ownership_gaps']} without owner, "
        f"{s['coverage_gaps']} coverage gaps",
        highlight=False,
    )
    for note in done.review.notes:
        out.print(Text.from_markup("[yellow]note:[/] ") + inert(note))
    digest = manifest.sha256(done.manifest.read_bytes())
    out.print(f"{len(done.files)} files in {done.folder}; open {done.folder / 'report.html'}")
    out.print(f"manifest {done.manifest} sha256 {digest}", highlight=False)


def _report_settings(cfg: Config, overrides: Mapping[str, object]) -> ReportConfig:
    """The `report:` section with the command line's overrides, validated like the file."""
    from pydantic import ValidationError

    data = {**cfg.report.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return ReportConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())  # fmt: skip
        raise InputError(problems) from None


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option(help="At most this many (0: all).")] = 20,
    raw: Annotated[
        bool, typer.Option(help="Also print each record's (redacted) raw bytes.")
    ] = False,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Records that could not be ingested: where they are, why, and (redacted) what they held."""
    try:
        store = _open_store(load_config(config), store_path, read_only=True)
        try:
            frame = store.dead_letters(limit or None)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    out.print(f"[bold]{len(frame)}[/] dead letters")
    for row in frame.itertuples(index=False):  # names, reasons and bytes from the logs: inert
        fmt = "?" if _missing(row.format) else row.format
        out.print(inert(f"{_position(row)} [{fmt}] {row.reason}"))
        if raw and not _missing(row.raw):
            out.print(Text("    ") + inert(bytes(row.raw)[:500].decode("utf-8", "replace")))


# -- alert delivery -------------------------------------------------------------------------


@app.command()
def deliver(
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Send what is in the outbox, then exit (status 1 if some remain)."
        ),
    ] = False,
    wait: Annotated[
        float, typer.Option(help="With --once: wait up to this many seconds for retries.")
    ] = 60.0,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Send the store's alerts to the sinks in the config (`sinks:`): each alert once per
    sink, again when it grows or is resolved, with retries, back-off and dead letters.
    Runs until SIGTERM or Ctrl-C (which finish the requests in flight) unless --once."""
    import signal
    import threading
    import time

    from pipeline.sinks.delivery import Deliverer

    log_to_stderr(logging.INFO)  # sink errors quote receivers' answers: printed inert
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop = threading.Event()
    try:
        cfg = load_config(config)
        if not any(s.enabled for s in cfg.sinks):
            raise ConfigError(
                "no sink is configured (or all are disabled): add one under "
                "`sinks:` in the config (README: Delivering alerts to your SIEM)"
            )
        store = _open_store(cfg, store_path, read_only=False)
        try:
            deliverer = Deliverer(store, cfg.sinks, cfg.delivery)
            deliverer.start()
            previous = {
                sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                if once:
                    deliverer.drain(time.time() + wait, stop)
                else:
                    err.print(
                        f"delivering to {', '.join(s.name for s in cfg.sinks)}; Ctrl-C stops",
                        highlight=False,
                    )
                    deliverer.run(stop)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                deliverer.close()
            names = [s.name for s in cfg.sinks if s.enabled]
            left = store.delivery_state(names, state="pending") if names else None
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    counts = deliverer.tally.counts
    pending = 0 if left is None else len(left)
    out.print(
        f"delivered {counts['delivered']}, suppressed {counts['suppressed']}, dead-lettered "
        f"{counts['dead']}; {pending} deliveries still pending"
        + (" (see `secretwatch alerts --state pending`)" if pending else ""),
        highlight=False,
    )
    if once and (pending or counts["dead"]):
        raise typer.Exit(1)


alerts_app = typer.Typer(
    help="Stored alerts and their delivery to each sink; resolve them, re-drive dead letters.",
    no_args_is_help=False,
)
app.add_typer(alerts_app, name="alerts")
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state", help="Only deliveries in this state: pending, delivered, dead, suppressed."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many alerts, newest first (0: all).")]


@alerts_app.callback(invoke_without_command=True)
def alerts_main(
    ctx: typer.Context,
    state: StateOpt = None,
    as_json: JsonOpt = False,
    limit: LimitOpt = 50,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Without a subcommand: `alerts list`."""
    if ctx.invoked_subcommand is None:
        alerts_list(state, as_json, limit, config, store_path)


@alerts_app.command("list")
def alerts_list(
    state: StateOpt = None,
    as_json: JsonOpt = False,
    limit: LimitOpt = 50,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Alerts, newest first, with their verdict and their state at every configured sink."""
    from pipeline.sinks.status import headline, summarize
    from pipeline.store.base import DELIVERY_STATES

    if state is not None and state not in DELIVERY_STATES:
        raise typer.BadParameter(
            f"{state!r}; choose one of {', '.join(DELIVERY_STATES)}", param_hint="--state"
        )
    try:
        cfg = load_config(config)
        store = _open_store(cfg, store_path, read_only=True)
        try:
            names = [s.name for s in cfg.sinks if s.enabled]
            frame = store.delivery_state(names, state, limit=limit or None)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    alerts = summarize(frame)
    if not names:
        err.print(
            "no sink is configured: alerts are stored but delivered nowhere (add one "
            "under `sinks:`)"
        )
    if as_json:
        for alert in alerts:
            sys.stdout.buffer.write(json_line(alert))
        return
    table = Table(title=f"{len(alerts)} alerts" + (f" with {state} deliveries" if state else ""))
    for name in (
        "time (UTC)",
        "severity",
        "identity",
        "detectors",
        "id",
        "rev",
        "verdict",
        "delivery",
    ):
        table.add_column(name, overflow="fold")
    for a in alerts:
        verdict = a["resolution"] or (
            "folded into " + a["folded_into"] if a["folded_into"] else "open"
        )
        table.add_row(  # identities from the logs, errors from the receivers: inert
            str(a["timestamp"])[:16].replace("T", " "),
            inert(a["severity"]),
            inert(a["identity"]),
            inert(", ".join(a["detectors"])),
            inert(a["id"]),
            f"{a['revision']}" + (f" (+{a['repeats']} repeats)" if a["repeats"] else ""),
            inert(verdict),
            inert(headline(a)),
        )
    out.print(table)
    dead = [d for a in alerts for d in a["deliveries"] if d["state"] == "dead"]
    for d in dead[:3]:
        out.print(inert(f"  dead at {d['sink']}: {d['last_error']}"))
    if dead:
        out.print("  re-drive with: secretwatch alerts redrive [--sink NAME] [--id ID]")


@alerts_app.command("resolve")
def alerts_resolve(
    alert_id: Annotated[str, typer.Argument(help="The alert id (swa-...).")],
    true_positive: Annotated[
        bool, typer.Option("--true-positive", help="A real incident.")
    ] = False,
    false_positive: Annotated[
        bool,
        typer.Option("--false-positive", help="Benign: retraining learns its events as normal."),
    ] = False,
    reopen: Annotated[bool, typer.Option("--reopen", help="Clear the verdict.")] = False,
    note: Annotated[str | None, typer.Option(help="Why, for the report.")] = None,
    by: Annotated[str | None, typer.Option(help="Who decided (default: $USER).")] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Record an analyst's verdict on an alert; the sinks receive it as a new revision."""
    import getpass

    if true_positive + false_positive + reopen != 1:
        raise typer.BadParameter("give exactly one of --true-positive, --false-positive, --reopen")
    resolution = "true_positive" if true_positive else "false_positive" if false_positive else None
    who = by or getpass.getuser()
    try:
        store = _open_store(load_config(config), store_path, read_only=False)
        try:
            store.resolve_alert(alert_id, resolution, who, note, datetime.now(UTC))
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    done = f"{alert_id}: {resolution or 'reopened'} (by {who})"
    out.print(inert(f"{done}; sinks receive the new revision at the next `secretwatch deliver`"))


@alerts_app.command("redrive")
def alerts_redrive(
    sink: Annotated[str | None, typer.Option(help="Only this sink's dead letters.")] = None,
    alert_id: Annotated[str | None, typer.Option("--id", help="Only this alert.")] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Make dead-lettered deliveries pending again (after fixing what refused them)."""
    try:
        cfg = load_config(config)
        names = [s.name for s in cfg.sinks]
        if sink is not None and sink not in names:
            raise typer.BadParameter(
                f"{sink!r}; configured sinks: {', '.join(names) or 'none'}", param_hint="--sink"
            )
        store = _open_store(cfg, store_path, read_only=False)
        try:
            moved = store.redrive(sink, alert_id)
        finally:
            store.close()
    except SecretwatchError as exc:
        raise _fail(exc) from None
    out.print(
        f"{moved} dead deliver{'y is' if moved == 1 else 'ies are'} pending again; "
        "`secretwatch deliver` sends them",
        highlight=False,
    )


def _missing(value: object) -> bool:
    """None, or the NaN pandas puts where a string column has no value."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: object) -> str:
    """Table text for a value that may be missing."""
    return "-" if _missing(value) else str(value)


def _position(row: Any) -> str:  # noqa: ANN401 - a row of Store.dead_letters()
    """Where a dead letter was: `file:line (byte offset) index`, leaving out what is not
    known (a whole file, a Kafka record), never `nan`."""
    where = str(row.file)
    where += "" if _missing(row.line) else f":{int(row.line)}"
    where += "" if _missing(row.offset) else f" (byte {int(row.offset)})"
    return where + ("" if _missing(row.idx) or not row.idx else f" {row.idx}")


def main() -> None:  # pragma: no cover - console-script entry
    app()
