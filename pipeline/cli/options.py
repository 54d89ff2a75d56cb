"""Options and values that several commands share: the config, the store (or the service
serving it), a point in time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

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
ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Read through a running service's API at this URL (http://host:port) instead of "
        "opening the store; token from $SECRETWATCH_API_TOKEN or the config's `api:`.",
    ),
]

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
