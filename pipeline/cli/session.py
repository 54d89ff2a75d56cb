"""How a command meets the configuration and the store, and how a failure leaves it: every
command that touches them runs inside `session` (or `exit_on_error` when it needs no
store), so an expected failure always ends the same way, a message on stderr and status 2.

While a service (`secretwatch serve`) holds the embedded store, the read and triage
commands reach it through the service's API instead (`RemoteStore`): at `--server URL`
when given, else at the config's `api:` address when opening the store finds it in use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from pipeline.cli import consoles
from pipeline.configfile import config_file
from pipeline.errors import SecretwatchError, StoreError
from pipeline.store import open_store
from pipeline.store.remote import TOKEN_ENV, RemoteStore
from pipeline.terminal import inert

if TYPE_CHECKING:
    from pipeline.collectors.settings import ApiConfig
    from pipeline.config import Config
    from pipeline.store import Store

HINT = (
    "to read it while that process runs, run `secretwatch serve` with `api:` in the config "
    "(the CLI then goes through its API), or pass --server URL"
)


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


def load_config(path: Path | None) -> Config:
    """`pipeline.config.load_config`, imported when a command first loads a config."""
    from pipeline.config import load_config as load

    return load(path)


@contextmanager
def reading(
    config: Path | None, store_path: Path | None, *, read_only: bool, server: str | None
) -> Iterator[Store]:
    """`session`'s store, for the commands that need no config besides: through `--server`
    with no config file to read (none given, in $SECRETWATCH_CONFIG or at
    config/default.yaml), the config is not loaded at all (a fifth of a second of a start),
    and the token is $SECRETWATCH_API_TOKEN's."""
    if server is not None and config_file(config) is None:
        with exit_on_error(), closing(open_remote(server, api_token(None))) as store:
            yield store
        return
    with session(config, store_path, read_only=read_only, server=server) as (_, store):
        yield store


@contextmanager
def session(
    config: Path | None,
    store_path: Path | None,
    *,
    read_only: bool,
    server: str | None = None,
) -> Iterator[tuple[Config, Store]]:
    """The loaded config and its store (`--store` overriding it, `--server` reading it
    through a running service's API), closed on the way out.

    Print results after the block: the store is closed by then and what printing does is
    not taken for a failure of the store.
    """
    with exit_on_error():
        cfg = load_config(config)
        with closing(open_for(cfg, store_path, read_only, server)) as store:
            yield cfg, store


def open_for(cfg: Config, store_path: Path | None, read_only: bool, server: str | None) -> Store:
    """The store a command reads: the service's API at `server` if given; else the
    configured store, or, when another process holds it and the config has `api:`, that
    API. Held and no API: the "in use" error with how to read it anyway."""
    if server is not None:
        return open_remote(server, api_token(cfg))
    try:
        return open_store(cfg, store_path, read_only)
    except StoreError as exc:
        if not in_use(exc):
            raise
        if cfg.api is None:
            raise StoreError(f"{exc}\nhint: {HINT}") from None
        url = api_url(cfg.api)
        try:
            return open_remote(url, api_token(cfg))
        except StoreError as remote:
            raise StoreError(f"{exc}\nand through the API: {remote}") from None


def open_remote(url: str, token: str | None) -> Store:
    if not url.startswith(("http://", "https://")):
        raise StoreError(f"--server {url!r}: give the service's API URL, http(s)://host:port")
    store = RemoteStore(url, token)
    store.open()
    return store


def in_use(exc: StoreError) -> bool:
    """Whether opening the store failed because another process holds its lock."""
    import duckdb  # here, after a store failed to open: slow to load for every command

    cause = exc.__cause__
    return isinstance(cause, duckdb.IOException) and "lock" in str(cause).lower()


def api_url(api: ApiConfig) -> str:
    """Where the configured API answers, as a client reaches it (a wildcard listen address
    is reached on loopback)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - where not to connect
    host = wildcard.get(api.host, api.host)
    return f"http://[{host}]:{api.port}" if ":" in host else f"http://{host}:{api.port}"


def api_token(cfg: Config | None) -> str | None:
    """$SECRETWATCH_API_TOKEN, else the token the config's `api:` names (if any)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    return cfg.api.token() if cfg is not None and cfg.api is not None else None
