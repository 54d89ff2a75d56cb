"""How a command meets the configuration and the store, and how a failure leaves it: every
command that touches them runs inside `session` (or `exit_on_error` when it needs no
store), so an expected failure always ends the same way, a message on stderr and status 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import typer
from rich.text import Text

from pipeline.cli import consoles
from pipeline.config import Config, load_config
from pipeline.errors import SecretwatchError
from pipeline.store import Store, open_store
from pipeline.terminal import inert


def fail(exc: SecretwatchError) -> typer.Exit:
    """The exit for an expected failure: the message (inert) on stderr, status 2."""
    consoles.err.print(Text.from_markup("[bold red]error:[/] ") + inert(exc, keep="\n"))
    return typer.Exit(2)


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn a `SecretwatchError` raised inside into `fail`'s message and exit status."""
    try:
        yield
    except SecretwatchError as exc:
        raise fail(exc) from None


@contextmanager
def session(
    config: Path | None, store_path: Path | None, *, read_only: bool
) -> Iterator[tuple[Config, Store]]:
    """The loaded config and its store (`--store` overriding it), closed on the way out.

    Print results after the block: the store is closed by then and what printing does is
    not taken for a failure of the store.
    """
    with exit_on_error():
        cfg = load_config(config)
        with closing(open_store(cfg, store_path, read_only)) as store:
            yield cfg, store
