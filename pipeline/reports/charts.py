"""The report's charts: matplotlib SVG with glyphs as paths (no fonts or network needed
to view them), ids salted with a constant and no date in the metadata, so the same
tables always give the same bytes. Labels taken from audit logs (identities, backends)
are drawn as plain text: never as matplotlib math (`$...$`), control characters shown as
visible escapes (`\\t`, `\\x1b`), glyphs the font lacks as boxes."""

from __future__ import annotations

import base64
import io
import warnings
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pipeline.terminal import visible  # noqa: E402

_STYLE: Any = {
    "svg.hashsalt": "secretwatch-report",
    "svg.fonttype": "path",
    "text.parse_math": False,  # `$` in a name is a character, not math
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}
INK, ACCENT, WARN, MUTED = "#1f2937", "#2563eb", "#dc2626", "#9ca3af"
_PALETTE = ["#2563eb", "#059669", "#d97706", "#7c3aed", "#db2777"]
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def svg_data_uri(fig: Figure) -> str:
    """The figure as a `data:` URI (base64 SVG), closed afterwards."""
    buffer = io.BytesIO()
    with plt.rc_context(_STYLE), warnings.catch_warnings():
        # A name in a script DejaVu Sans lacks is drawn as boxes; the tables hold it exactly.
        warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def findings(counts: dict[str, int]) -> str:
    """Horizontal bars: how many of each finding, red where there are any."""
    with plt.rc_context(_STYLE):
        fig, ax = _figure(6.4, 0.32 * len(counts) + 0.8)
        labels, values = list(counts), list(counts.values())
        y = np.arange(len(labels))[::-1]
        ax.barh(y, values, color=[WARN if v else MUTED for v in values], height=0.6)
        ax.set_yticks(y, labels)
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:,}", va="center", color=INK)
        ax.set_xlim(0, max([*values, 1]) * 1.15)
        ax.set_title("Findings in this review")
        ax.xaxis.set_visible(False)
        ax.spines["bottom"].set_visible(False)
    return svg_data_uri(fig)


def coverage(
    days: pd.DataFrame, gaps: pd.DataFrame, since: datetime, until: datetime, tz: str
) -> str:
    """Events per day for each source, with silences longer than the gap limit shaded."""
    zone = ZoneInfo(tz)
    with plt.rc_context(_STYLE):
        fig, ax = _figure(7.2, 2.6)
        keys = sorted({(s, b) for s, b in zip(days["source"], days["backend"], strict=True)})
        for i, (source, backend) in enumerate(keys):
            mine = days[(days["source"] == source) & (days["backend"] == backend)]
            series = mine.groupby("day")["events"].sum()
            full = pd.date_range(since, until - timedelta(seconds=1), freq="D", tz="UTC").floor("D")
            series = series.reindex(full.unique(), fill_value=0)
            x = series.index.tz_convert(zone).tz_localize(None)
            ax.plot(
                x,
                series.values,
                color=_PALETTE[i % len(_PALETTE)],
                lw=1.4,
                label=_label(f"{source} ({backend})"),
            )
        for _, gap in gaps.iterrows():
            ax.axvspan(
                gap["gap_start"].tz_convert(zone).tz_localize(None),
                gap["gap_end"].tz_convert(zone).tz_localize(None),
                color=WARN,
                alpha=0.15,
                lw=0,
            )
        ax.set_xlim(
            pd.Timestamp(since).tz_convert(zone).tz_localize(None),
            pd.Timestamp(until).tz_convert(zone).tz_localize(None),
        )
        ax.set_ylim(bottom=0)
        ax.set_ylabel("events per day")
        ax.set_title("Events per day by source (red: gaps)")
        if keys:
            ax.legend(loc="upper left", frameon=False, fontsize=8, ncols=min(3, len(keys)))
        fig.autofmt_xdate()
    return svg_data_uri(fig)


def activity(hourly: pd.DataFrame, tz: str) -> str:
    """Events by weekday and hour of day (local), all identities together."""
    grid = np.zeros((7, 24))
    if len(hourly):
        local = hourly["hour"].dt.tz_convert(ZoneInfo(tz))
        sums = hourly.groupby([local.dt.day_of_week, local.dt.hour])["events"].sum()
        for (day, hour), value in sums.items():
            grid[int(day), int(hour)] = value
    with plt.rc_context(_STYLE):
        fig, ax = _figure(7.2, 2.4)
        image = ax.imshow(grid, aspect="auto", cmap="Blues", interpolation="nearest")
        ax.set_yticks(range(7), _WEEKDAYS)
        ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
        ax.set_xlabel(f"hour of day ({tz})")
        ax.set_title("When secrets were accessed")
        fig.colorbar(image, ax=ax, label="events", shrink=0.9)
    return svg_data_uri(fig)


def grants(summary: pd.DataFrame, top: int = 15) -> str:
    """Granted against used secrets for the identities with the most unused grants."""
    with plt.rc_context(_STYLE):
        if summary.empty:
            fig, ax = _figure(7.2, 1.2)
            ax.text(
                0.5,
                0.5,
                "No grant evidence configured (Vault policies or inventory grants)",
                ha="center",
                va="center",
                color=MUTED,
            )
            ax.axis("off")
            return svg_data_uri(fig)
        shown = summary.sort_values(["unused", "identity"], ascending=[False, True]).head(top)
        fig, ax = _figure(7.2, 0.3 * len(shown) + 1.0)
        y = np.arange(len(shown))[::-1]
        ax.barh(y, shown["used"], color=ACCENT, height=0.6, label="used in period")
        ax.barh(
            y,
            shown["unused"],
            left=shown["used"],
            height=0.6,
            label="granted, unused",
            color=[WARN if o else MUTED for o in shown["overbroad"]],
        )
        ax.set_yticks(y, [_label(i) for i in shown["identity"]])
        ax.set_xlabel("secrets")
        ax.set_title("Granted versus used (red: grants far exceed use)")
        ax.legend(loc="lower right", frameon=False, fontsize=8)
    return svg_data_uri(fig)


def _label(text: str, limit: int = 42) -> str:
    """A name from an audit log as a chart label: its end if long, controls visible."""
    text = visible(text)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
