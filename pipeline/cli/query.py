"""Commands that read the store: `events`, `stats` and `dead-letters`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, ServerOpt, StoreOpt, parse_when
from pipeline.cli.render import cell, missing, position
from pipeline.cli.session import reading
from pipeline.record import ACTIONS, OUTCOMES, SOURCES
from pipeline.store import EventFilter
from pipeline.store.base import GROUPABLE
from pipeline.store.remote import RemoteStore
from pipeline.terminal import inert, json_line

if TYPE_CHECKING:
    from pipeline.store import Store


def _filter(
    since: str | None,
    until: str | None,
    identity: str | None,
    secret: str | None,
    action: str | None,
    outcome: str | None,
    source: str | None,
) -> EventFilter:
    """The events the filter options name; an unknown action, outcome or source is a usage
    error naming the valid ones."""
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


def _event_rows(
    store: Store, where: EventFilter, limit: int | None, newest: bool
) -> list[dict[str, Any]]:
    """The events, a dict per row; through the service's API read without pandas, so
    `events --server` answers in a fraction of a second."""
    if isinstance(store, RemoteStore):
        return store.event_rows(where, limit, newest)
    frame = store.events(where, limit=limit, newest_first=newest)
    rows: list[dict[str, Any]] = frame.to_dict(orient="records")
    return rows


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
    server: ServerOpt = None,
) -> None:
    """Show stored events, filtered, as a table or JSON lines."""
    where = _filter(since, until, identity, secret, action, outcome, source)
    with reading(config, store_path, read_only=True, server=server) as store:
        rows = _event_rows(store, where, limit or None, newest)
    if as_json:
        for record in rows:
            clean = {"event_id": record.pop("event_id"), "timestamp": record.pop("ts").isoformat()}
            clean.update((k, None if cell(v) == "-" and v != "-" else v) for k, v in record.items())
            sys.stdout.buffer.write(json_line(clean))
        return
    table = Table(title=f"{len(rows)} events")
    for name in ("time (UTC)", "source", "identity", "action", "secret", "outcome", "source ip"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(  # every value from the logs, printed inert
            row["ts"].strftime("%Y-%m-%d %H:%M:%S"),
            inert(row["source"]),
            inert(row["identity"]),
            inert(row["action"]),
            inert(cell(row["secret"])),
            inert(row["outcome"]),
            inert(cell(row["source_ip"])),
        )
    consoles.out.print(table)


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
    server: ServerOpt = None,
) -> None:
    """Event counts per source, identity, secret and outcome (or what --by names)."""
    groups = by or ["source", "identity", "secret", "outcome"]
    for name in groups:
        if name not in GROUPABLE:
            raise typer.BadParameter(
                f"{name!r}; choose from {', '.join(GROUPABLE)}", param_hint="--by"
            )
    where = _filter(since, until, identity, secret, action, outcome, source)
    with reading(config, store_path, read_only=True, server=server) as store:
        total = store.count(where)
        frames = {name: store.stats(name, where, limit) for name in groups}
    consoles.out.print(f"[bold]{total:,}[/] events")
    for name, frame in frames.items():
        table = Table(title=f"by {name}")
        for col in (name, "events", "denied", "first seen", "last seen"):
            table.add_column(col, overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(
                inert(cell(row[0])),
                f"{row.events:,}",
                f"{row.denied:,}",
                row.first_seen.strftime("%Y-%m-%d %H:%M"),
                row.last_seen.strftime("%Y-%m-%d %H:%M"),
            )
        consoles.out.print(table)


def dead_letters(
    limit: Annotated[int, typer.Option(help="At most this many (0: all).")] = 20,
    raw: Annotated[
        bool, typer.Option(help="Also print each record's (redacted) raw bytes.")
    ] = False,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
    server: ServerOpt = None,
) -> None:
    """Records that could not be ingested: where they are, why, and (redacted) what they held."""
    with reading(config, store_path, read_only=True, server=server) as store:
        frame = store.dead_letters(limit or None)
    out = consoles.out
    out.print(f"[bold]{len(frame)}[/] dead letters")
    for row in frame.itertuples(index=False):  # names, reasons and bytes from the logs: inert
        fmt = "?" if missing(row.format) else row.format
        out.print(inert(f"{position(row)} [{fmt}] {row.reason}"))
        if raw and not missing(row.raw):
            out.print(Text("    ") + inert(bytes(row.raw)[:500].decode("utf-8", "replace")))
