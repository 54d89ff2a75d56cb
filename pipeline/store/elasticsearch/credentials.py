"""Client credentials for the Elasticsearch store: read from the environment variables the
config names, never from the config file itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.errors import StoreError

if TYPE_CHECKING:
    from pipeline.config import ElasticsearchStoreConfig


def credentials(cfg: ElasticsearchStoreConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    """Client credentials from the environment variables the config names."""
    if cfg.api_key_env and cfg.username:
        raise StoreError("set either `store.api_key_env` or `store.username`, not both")
    if cfg.api_key_env:
        return {"api_key": _env_secret(environ, cfg.api_key_env, "store.api_key_env")}
    if cfg.password_env and not cfg.username:
        raise StoreError("`store.password_env` is set without `store.username`; set both")
    if cfg.username:
        if not cfg.password_env:
            raise StoreError(
                "`store.username` is set without `store.password_env`; name the environment "
                "variable that holds the password"
            )
        return {
            "username": cfg.username,
            "password": _env_secret(environ, cfg.password_env, "store.password_env"),
        }
    return {}


def _env_secret(environ: Mapping[str, str], name: str, key: str) -> str:
    value = environ.get(name)
    if not value:
        raise StoreError(
            f"environment variable {name} (named by `{key}`) is not set or empty; export it "
            "before starting secretwatch"
        )
    return value
