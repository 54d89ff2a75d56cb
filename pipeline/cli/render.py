"""What several commands print the same way: alerts, an ingest run's accounting, table
cells that may be missing, and progress bars on stderr."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from pipeline.cli import consoles
from pipeline.terminal import inert

if TYPE_CHECKING:
    from detectors.alert import Alert
    from pipeline.ingest import IngestSummary


def print_alerts(alerts: list[Alert], limit: int = 20) -> None:
    """Alerts, most severe first: one headline and the explanation each."""
    from detectors.settings import SEVERITIES

    out = consoles.out
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
    out = consoles.out
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


def progress(total: int, unit_bytes: bool, show: bool) -> Progress:
    """A transient bar on stderr, in bytes or in items; `show` False keeps it hidden."""
    columns: list[str | ProgressColumn] = [
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn() if unit_bytes else "{task.completed:,.0f}/{task.total:,.0f}",
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=consoles.err, transient=True, disable=not show)


def missing(value: object) -> bool:
    """None, or the NaN pandas puts where a string column has no value."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell(value: object) -> str:
    """Table text for a value that may be missing."""
    return "-" if missing(value) else str(value)


def position(row: Any) -> str:  # noqa: ANN401 - a row of Store.dead_letters()
    """Where a dead letter was: `file:line (byte offset) index`, leaving out what is not
    known (a whole file, a Kafka record), never `nan`."""
    where = str(row.file)
    where += "" if missing(row.line) else f":{int(row.line)}"
    where += "" if missing(row.offset) else f" (byte {int(row.offset)})"
    return where + ("" if missing(row.idx) or not row.idx else f" {row.idx}")
