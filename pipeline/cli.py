"""The `secretwatch` command line: wiring only; the work lives in ingest, follow and store."""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import numpy as np
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from pipeline.config import Config, load_config
from pipeline.errors import InputError, SecretwatchError
from pipeline.ingest import Ingestor, IngestSummary, expand_paths
from pipeline.record import ACTIONS, OUTCOMES, SOURCES
from pipeline.store import STORES, EventFilter, Store
from pipeline.store.base import GROUPABLE

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
    Path | None, typer.Option("--store", help="Store file, overriding `store.path` in the config.")
]


def _fail(exc: SecretwatchError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(2)


def _open_store(config: Config, store_path: Path | None, read_only: bool) -> Store:
    path = store_path or config.store.path
    store = STORES[config.store.type](path, read_only=read_only)
    store.open()
    return store


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

                live = _Live(store, cfg) if detect else None
                on_stored = live.feed if live is not None else None
                summary = follow_files(
                    paths, store, cfg, fmt=fmt, console=err, on_stored=on_stored
                )
                if live is not None:
                    live.detection.snapshot()
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

    def feed(self, rows: list) -> None:
        for alert in self.detection.process(rows, stored=True):
            err.print(
                f"[bold red]alert[/] {alert.severity} {alert.identity}: {alert.explanation}",
                highlight=False,
            )


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
            store, fmt, cfg.backends, cfg.ingest.batch_size, lambda n: progress.advance(task, n)
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
        total = sum(p.stat().st_size for p in files)
        with _progress(total, True, total >= 8 << 20) as progress:
            task = progress.add_task("reading", total=total)
            events, summary, _ = load_events(
                inputs, fmt, cfg.backends, lambda n: progress.advance(task, n)
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
    alerts.parent.mkdir(parents=True, exist_ok=True)
    write_alerts(found, alerts)
    base = detection.base
    out.print(
        f"trained on {len(events) - later:,} events before {cut.isoformat()} "
        f"({len(base)} identities now known), replayed {later:,}; "
        f"{len(found)} alert{'' if len(found) == 1 else 's'} written to {alerts}"
    )
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
    cold = int((~base.warm(np.arange(len(base)), base.trained_until_us,
                          cfg.detectors.cold_start.min_active_days,
                          cfg.detectors.cold_start.min_span_days)).sum())
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
                found = detect_store(store, cfg.detectors, parse_when(until, "--until"))
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
        out.print(
            f"[{colours[a.severity]}]{a.severity.upper():8}[/] {a.timestamp:%Y-%m-%d %H:%M}Z "
            f"[bold]{a.identity}[/] ({', '.join(a.detectors)}; {a.evidence_count} events; "
            f"{a.id})",
            highlight=False,
        )
        out.print(f"         {a.explanation}", highlight=False, markup=False)
    if len(ranked) > limit:
        out.print(f"... and {len(ranked) - limit} more")


def print_summary(s: IngestSummary) -> None:
    """The run's accounting: every record read ends up in events, skipped or dead-lettered."""
    formats = ", ".join(f"{n} {f}" for f, n in s.formats.most_common()) or "none recognised"
    out.print(f"[bold]{s.files}[/] files ({formats})", highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("records read (lines or documents)", f"{s.records:,}")
    table.add_row("  made events", f"{s.consumed:,}")
    table.add_row("  held nothing about secrets", f"{s.skipped_records:,}")
    table.add_row("  dead-lettered", f"{s.dead_records:,}")
    table.add_row("events", f"{s.events:,}")
    table.add_row("  stored (new)", f"{s.stored:,}")
    table.add_row("  already stored", f"{s.duplicates:,}")
    table.add_row("audit entries skipped (not about secrets)", f"{sum(s.skipped.values()):,}")
    out.print(table)
    for reason, n in s.skipped.most_common(5):
        out.print(f"  {n:,} x {reason}", highlight=False)
    if s.dead:
        out.print(f"[yellow]{s.dead_lettered:,} dead letters[/] (see `secretwatch dead-letters`):")
        for reason, n in s.dead.most_common(5):
            out.print(f"  {n:,} x {reason}", highlight=False)
        for letter in s.dead_examples[:3]:
            out.print(f"  e.g. {letter.where()}: {letter.reason}", highlight=False)
    if s.files_skipped:
        shown = ", ".join(s.files_skipped[:3])
        out.print(f"{len(s.files_skipped)} documentation files not read: {shown}", highlight=False)


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
            sys.stdout.buffer.write(orjson.dumps(clean) + b"\n")
        return
    table = Table(title=f"{len(frame)} events")
    for name in ("time (UTC)", "source", "identity", "action", "secret", "outcome", "source ip"):
        table.add_column(name, overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(
            row.ts.strftime("%Y-%m-%d %H:%M:%S"),
            row.source,
            row.identity,
            row.action,
            _cell(row.secret),
            row.outcome,
            _cell(row.source_ip),
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
                _cell(row[0]),
                f"{row.events:,}",
                f"{row.denied:,}",
                row.first_seen.strftime("%Y-%m-%d %H:%M"),
                row.last_seen.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)


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
    for row in frame.itertuples(index=False):
        idx = f" {row.idx}" if row.idx else ""
        out.print(
            f"{row.file}:{row.line} (byte {row.offset}){idx} [{row.format or '?'}] {row.reason}",
            highlight=False,
        )
        if raw and row.raw is not None:
            out.print(
                "    " + bytes(row.raw)[:500].decode("utf-8", "replace"),
                highlight=False,
                markup=False,
            )


def _missing(value: object) -> bool:
    """None, or the NaN pandas puts where a string column has no value."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: object) -> str:
    """Table text for a value that may be missing."""
    return "-" if _missing(value) else str(value)


def main() -> None:  # pragma: no cover - console-script entry
    app()
