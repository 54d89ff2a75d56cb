"""Which config file a command reads, told without loading the config's models (their
validators take a fifth of a second to build: `events --server` with no config file to read
skips them)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG = Path("config/default.yaml")
ENV_VAR = "SECRETWATCH_CONFIG"


def config_file(path: str | Path | None) -> Path | None:
    """`path`, else $SECRETWATCH_CONFIG, else config/default.yaml if present; None when
    there is none (the built-in defaults apply)."""
    chosen = path or os.environ.get(ENV_VAR)
    if chosen is None:
        return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None
    return Path(chosen)
