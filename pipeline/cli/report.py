"""`secretwatch report`: the quarterly access review, and checking one against its manifest."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, ServerOpt, StoreOpt
from pipeline.cli.render import progress
from pipeline.cli.session import exit_on_error, load_config, open_for
from pipeline.errors import InputError
from pipeline.terminal import inert

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.reports.period import Period
    from pipeline.reports.settings import ReportConfig


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
    server: ServerOpt = None,
) -> None:
    """Quarterly access review: HTML (summary page, charts), CSV and JSON of every table,
    and manifest.json with the SHA-256 of each file, the parameters and the store state.

    Sections: data-source coverage, secrets and accessors, identities, granted versus used
    access, unused secrets, rotation, ownership, alerts and denials, control mapping.
    """
    from pipeline.reports import manifest
    from pipeline.reports.run import generate

    if verify is not None:
        _verify(verify, config)
        return
    with exit_on_error():
        cfg = load_config(config)
        overrides = {"owners": owners, "inventory": inventory, "policies_dir": policies,
                     "vault_addr": vault_addr, "timezone": timezone}  # fmt: skip
        settings = _report_settings(cfg, overrides)
        chosen = _period(quarter, first, last, settings.timezone)
        folder = out_dir or Path("data") / "reports" / f"access-review-{chosen.slug}"
        with closing(open_for(cfg, store_path, True, server)) as store:
            with progress(9, False, True) as bar:
                task = bar.add_task("report", total=9)

                def step(name: str) -> None:
                    bar.update(task, description=name, advance=1)

                archive = cfg.retention.archive  # DuckDB reads archived days, ES does not
                read = archive.path if archive and cfg.store.type == "duckdb" else None
                if archive and read is None:
                    _hot_only(archive.path, chosen)
                done = generate(store, cfg.store.type, chosen, settings, folder, pdf, step, read)
        if cfg.retention.archive is not None:  # kept with the evidence (pipeline/archive)
            from pipeline.archive.reports import archive_report

            archived = archive_report(cfg.retention.archive, done.manifest)
            consoles.err.print(inert(f"manifest archived as {archived}"), soft_wrap=True)
    s = done.review.summary
    consoles.out.print(
        f"[bold]{chosen.label}[/] ({chosen.timezone}): {s['identities_active']} identities, "
        f"{s['secrets_read']}/{s['secrets_known']} secrets read, {s['reads']:,} reads; "
        f"findings: {s['unused_secrets']} unused, "
        f"{s['rotation_overdue'] + s['rotation_no_evidence']} not rotated, "  # type: ignore[operator]
        f"{s['overbroad_identities']} over-broad, {s['ownership_gaps']} without owner, "
        f"{s['coverage_gaps']} coverage gaps",
        highlight=False,
    )
    for note in done.review.notes:
        consoles.out.print(Text.from_markup("[yellow]note:[/] ") + inert(note))
    digest = manifest.sha256(done.manifest.read_bytes())
    consoles.out.print(
        f"{len(done.files)} files in {done.folder}; open {done.folder / 'report.html'}"
    )
    consoles.out.print(f"manifest {done.manifest} sha256 {digest}", highlight=False)


def _hot_only(archive: Path, chosen: Period) -> None:
    """Warn when the period has archived days a store that reads hot events only (the
    Elasticsearch store) cannot see: the report would be silently short of them."""
    from pipeline.store.duckdb.archived import event_files

    days = sorted({day for day, _ in event_files(archive, chosen.since, chosen.until)})
    if days:
        consoles.err.print(
            inert(
                f"warning: {len(days)} days of the period ({days[0]} to {days[-1]}) are "
                f"archived in {archive}, and this store reads hot events only: the report "
                "leaves them out (README: Retention and evidence)"
            ),
            style="yellow",
            soft_wrap=True,
        )


def _report_settings(cfg: Config, overrides: Mapping[str, object]) -> ReportConfig:
    """The `report:` section with the command line's overrides, validated like the file."""
    from pydantic import ValidationError

    from pipeline.reports.settings import ReportConfig

    data = {**cfg.report.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return ReportConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())  # fmt: skip
        raise InputError(problems) from None


def _period(quarter: str | None, first: str | None, last: str | None, timezone: str) -> Period:
    """The review period: --quarter, or --from and --to, never both or neither."""
    from pipeline.reports import period as periods

    if quarter is not None and first is None and last is None:
        return periods.quarter(quarter, timezone)
    if quarter is None and first is not None and last is not None:
        return periods.days(first, last, timezone)
    raise InputError("give either --quarter 2026Q3, or both --from and --to")


def _verify(folder: Path, config: Path | None) -> None:
    """`report --verify`: every file of a report folder against its manifest, and the
    archive digests it rests on in the configured archive; exit 1 if not."""
    from pipeline.reports import manifest

    def archive() -> Path | None:
        section = load_config(config).retention.archive
        return section.path if section else None

    with exit_on_error():
        problems = manifest.verify(folder, archive)
    for problem in problems:  # names from the folder: printed as inert text
        consoles.err.print(inert(problem), style="red")
    if problems:
        raise typer.Exit(1)
    consoles.out.print(f"{folder}: every file matches {manifest.NAME}", markup=False)
