"""The two consoles every command prints to: results on stdout, progress and problems on
stderr. Commands reach them as `consoles.out` / `consoles.err` so a test can swap both."""

from __future__ import annotations

from rich.console import Console

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)
