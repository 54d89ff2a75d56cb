"""`secretwatch archive`: move old events into the signed archive, and `archive verify`,
`archive keygen`, `archive prune`. Options are parsed here; the work is pipeline/archive/."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, StoreOpt
from pipeline.cli.session import exit_on_error, in_use, load_config
from pipeline.errors import ConfigError, InputError, StoreError
from pipeline.terminal import inert

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from pipeline.archive.settings import ArchiveSettings

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def archive_main(
    ctx: typer.Context,
    before: Annotated[
        str | None,
        typer.Option(help="Archive whole UTC days before this date (default: today - hot_days)."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Move events older than `retention.hot_days` from the store into the archive: one
    zstd Parquet file per UTC day and source, a signed digest per day, then the hot rows
    dropped. Safe to interrupt and re-run."""
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.archive.run import run_archive
    from pipeline.store import open_store

    cutoff = _day(before, "--before")
    show = not (quiet or as_json)

    def on_day(day: date, written: int, dropped: int) -> None:
        if show:
            consoles.err.print(
                f"{day}: {written:,} events archived, {dropped:,} dropped from the store",
                highlight=False,
                soft_wrap=True,
            )

    with exit_on_error():
        cfg = load_config(config)
        try:
            store = open_store(cfg, store_path, read_only=False)
        except StoreError as exc:
            if not in_use(exc):
                raise
            raise StoreError(f"{exc}\nhint: a running `secretwatch serve` archives on its own, "
                             "every retention.archive.schedule_minutes") from None  # fmt: skip
        with closing(store):
            run = run_archive(cfg.retention, cfg.store.type, store, cutoff, on_day)
    for name in run.removed:
        consoles.err.print(
            inert(f"removed {name}: left unlisted by an interrupted run"), soft_wrap=True
        )
    if as_json:
        consoles.out.print_json(
            json.dumps({k: v for k, v in vars(run).items()}, default=str), highlight=False
        )
        return
    consoles.out.print(
        f"{run.days} days archived: {run.events:,} events and {run.alerts:,} alerts in "
        f"{run.files} files ({run.bytes:,} bytes); {run.dropped:,} events dropped from the store",
        highlight=False,
        soft_wrap=True,
    )


def keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM).")],
) -> None:
    """Make an Ed25519 signing key: the private key at --out (mode 0600; point
    `retention.archive.key_file` at it) and its public key beside it (<out>.pub)."""
    from pipeline.archive import keys

    with exit_on_error():
        public, fingerprint = keys.keygen(out)
    consoles.out.print(inert(f"private key {out} (keep it secret; mode 0600)"), soft_wrap=True)
    consoles.out.print(inert(f"public key {public}"), soft_wrap=True)
    consoles.out.print(f"fingerprint sha256 {fingerprint}", highlight=False, soft_wrap=True)


def verify(
    first: Annotated[
        str | None, typer.Option("--from", help="Hash files of days from this date.")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="... up to this date (inclusive).")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="Public key (PEM) to check signatures with (default: the config's "
            "key, else the archive's public_key.pem)."
        ),  # fmt: skip
    ] = None,
    folder: Annotated[
        Path | None, typer.Option("--archive", help="Archive folder (default: the config's).")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Walk the digest chain: every record's link and signature, every listed file's
    SHA-256, and no file unlisted. Exit 1 on any problem, naming the file and day."""
    from pipeline.archive import keys
    from pipeline.archive.run import settings_of
    from pipeline.archive.verify import verify as check

    since, until = _day(first, "--from"), _day(last, "--to")
    with exit_on_error():
        public = keys.load_public(public_key) if public_key is not None else None
        if folder is None or public is None:
            retention = load_config(config).retention
            folder = folder or settings_of(retention).path
            if public is None and retention.archive is not None:
                public = _config_public(retention.archive)
        started = datetime.now(UTC)
        done = check(folder, public, since, until)
        seconds = max((datetime.now(UTC) - started).total_seconds(), 1e-9)
    if as_json:
        summary = {**vars(done), "days": sorted(done.days), "seconds": seconds}
        consoles.out.print_json(json.dumps(summary, default=str), highlight=False)
    else:
        for note in done.notes:
            consoles.err.print(inert("note: " + note), soft_wrap=True)
        for problem in done.problems:
            consoles.err.print(inert(problem), style="red", soft_wrap=True)
        consoles.out.print(
            inert(
                f"{folder}: {done.records} records, {len(done.days)} days, {done.files} files "
                f"({done.rows:,} events, {done.bytes:,} bytes, {done.bytes / seconds / 1e9:.2f} "
                f"GB/s), {done.pruned} pruned files; key {str(done.fingerprint)[:16]}…; "
                f"head {done.head}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if done.problems:
        if not as_json:
            consoles.out.print(f"{len(done.problems)} problems", style="red")
        raise typer.Exit(1)


def _config_public(settings: ArchiveSettings) -> Ed25519PublicKey | None:
    """The public half of the configured key, or None if it cannot be loaded here."""
    from pipeline.archive import keys

    try:
        return keys.load_private(settings).public_key()
    except ConfigError:
        return None


def prune(
    dry_run: Annotated[bool, typer.Option(help="Only list what would be removed.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Remove archived files older than `retention.archive_years`, after writing a signed
    prune record listing them into the chain (so `verify` shows a deliberate deletion)."""
    from pipeline.archive import keys
    from pipeline.archive.prune import prune as remove
    from pipeline.archive.run import settings_of

    with exit_on_error():
        cfg = load_config(config)
        settings = settings_of(cfg.retention)
        if not settings.path.is_dir():
            raise InputError(f"archive {settings.path} does not exist yet")
        key = keys.load_private(settings)
        today = datetime.now(UTC).date()
        done = remove(settings.path, key, cfg.retention.archive_years, today, dry_run)
    verb = "would remove" if dry_run else "removed"
    for entry in done.removed:
        consoles.out.print(inert(f"{verb} {entry['path']} ({entry['rows']} rows)"), soft_wrap=True)
    where = f"; prune record {done.record}" if done.record else ""
    consoles.out.print(
        inert(f"{len(done.removed)} files before {done.cutoff} {verb}{where}"),
        highlight=False,
        soft_wrap=True,
    )
