"""How a command meets the configuration and the store, and how a failure leaves it."""

from __future__ import annotations

import typer
from rich.text import Text

from pipeline.cli import consoles
from pipeline.errors import SecretwatchError
from pipeline.terminal import inert


def fail(exc: SecretwatchError) -> typer.Exit:
    """The exit for an expected failure: the message (inert) on stderr, status 2."""
    consoles.err.print(Text.from_markup("[bold red]error:[/] ") + inert(exc, keep="\n"))
    return typer.Exit(2)
