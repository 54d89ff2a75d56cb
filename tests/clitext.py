"""Command output as text to look for phrases in: shared by the CLI tests."""

from __future__ import annotations

import re


def flat(text: str) -> str:
    """Output without rich's box drawing and line wrapping, for substring checks: the
    console wraps at its width, so where a line breaks depends on what precedes it (the
    length of a temporary path, say)."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━]", " ", text).split())
