"""The HTML report: one self-contained file (inline CSS, charts as data URIs, no scripts,
no external resources), with a one-page summary first and every table after it.

Times are shown in the report's time zone; the CSV and JSON files keep UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import pandas as pd

from pipeline.reports import charts
from pipeline.reports.access_review import Review

TEMPLATES = Path(__file__).parent / "templates"

# Per table: the columns shown, as (column, label, kind); kinds: text (one line), prose
# (wraps), path, int, float, time, bool, status (a badge). The CSV and JSON files hold every column.
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "coverage": [
        ("source", "source", "text"), ("backend", "backend", "text"),
        ("first_event", "first event", "time"), ("last_event", "last event", "time"),
        ("events", "events", "int"), ("active_days", "days with events", "int"),
        ("gaps", "gaps", "int"), ("longest_gap_hours", "longest gap (h)", "float"),
        ("status", "status", "status"),
    ],
    "coverage_gaps": [
        ("source", "source", "text"), ("backend", "backend", "text"),
        ("gap_start", "silent from", "time"), ("gap_end", "until", "time"),
        ("hours", "hours", "float"),
    ],
    "secrets": [
        ("secret", "secret", "path"), ("source", "source", "text"), ("owner", "owner", "text"),
        ("accessors", "accessors", "int"), ("reads", "reads", "int"),
        ("first_read", "first read", "time"), ("last_read_in_period", "last read", "time"),
        ("denied", "denied", "int"), ("last_rotated", "last new value", "time"),
    ],
    "secret_accessors": [
        ("secret", "secret", "path"), ("identity", "identity", "path"),
        ("reads", "reads", "int"), ("denied", "denied", "int"), ("other", "other", "int"),
        ("first_ts", "first", "time"), ("last_ts", "last", "time"),
    ],
    "identities": [
        ("identity", "identity", "path"), ("identity_kind", "kind", "text"),
        ("sources", "sources", "text"), ("secrets_read", "secrets read", "int"),
        ("reads", "reads", "int"), ("events", "events", "int"), ("denied", "denied", "int"),
        ("hours_active", "hours active", "int"), ("first_ts", "first", "time"),
        ("last_ts", "last", "time"), ("alerts", "alerts", "int"),
    ],
    "overbroad_identities": [
        ("identity", "identity", "path"), ("granted", "granted", "int"), ("used", "used", "int"),
        ("unused", "unused", "int"), ("used_share", "used share", "float"),
        ("secrets_read_without_grant", "read without grant", "int"),
    ],
    "unused_grants": [
        ("identity", "identity", "path"), ("secret", "secret", "path"),
        ("granted_by", "granted by", "text"), ("rule", "rule", "path"),
    ],
    "grant_summary": [
        ("identity", "identity", "path"), ("granted", "granted", "int"), ("used", "used", "int"),
        ("unused", "unused", "int"), ("used_share", "used share", "float"),
        ("secrets_read_without_grant", "read without grant", "int"),
        ("overbroad", "over-broad", "bool"),
    ],
    "unused_secrets": [
        ("secret", "secret", "path"), ("source", "source", "text"), ("owner", "owner", "text"),
        ("first_seen", "known since", "time"), ("last_read", "last read ever", "time"),
        ("days_since_read", "days since read", "int"), ("listed", "in inventory", "bool"),
    ],
    "stale_rotations": [
        ("secret", "secret", "path"), ("source", "source", "text"), ("owner", "owner", "text"),
        ("last_rotated", "last new value", "time"), ("rotated_by", "by", "text"),
        ("days_since_rotation", "days since", "int"), ("status", "status", "status"),
    ],
    "ownership_gaps": [
        ("secret", "secret", "path"), ("source", "source", "text"), ("backend", "backend", "text"),
        ("reads", "reads in period", "int"), ("accessors", "accessors", "int"),
    ],
    "alerts": [
        ("ts", "time", "time"), ("identity", "identity", "path"), ("severity", "severity", "text"),
        ("detectors", "detectors", "text"), ("explanation", "explanation", "prose"),
        ("resolution", "resolution", "status"),
    ],
    "denied_attempts": [
        ("identity", "identity", "path"), ("secret", "target", "path"),
        ("denied", "denied", "int"), ("actions", "actions", "text"),
        ("first_ts", "first", "time"), ("last_ts", "last", "time"),
    ],
    "controls": [
        ("title", "section", "prose"), ("evidence", "what it shows", "prose"),
        ("soc2", "SOC 2", "prose"), ("iso27001", "ISO 27001:2022", "prose"),
        ("pci_dss", "PCI DSS 4.0", "prose"), ("files", "files", "prose"),
    ],
}  # fmt: skip


@dataclass(frozen=True)
class HtmlTable:
    name: str
    headers: list[tuple[str, str]]  # (label, kind)
    rows: list[list[str]]
    total: int


def table(
    review: Review,
    name: str,
    limit: int,
    sort: list[str] | None = None,
    ascending: bool | list[bool] = True,
) -> HtmlTable:
    """Rows of one table as display text, at most `limit` of them."""
    frame = review.tables[name]
    if sort:
        frame = frame.sort_values(sort, ascending=ascending, kind="stable")
    spec = COLUMNS[name]
    zone = ZoneInfo(review.period.timezone)
    kinds = [kind for _, _, kind in spec]
    rows = [
        [_show(value, kind, zone) for value, kind in zip(values, kinds, strict=True)]
        for values in frame[[c for c, _, _ in spec]].head(limit).itertuples(index=False)
    ]
    return HtmlTable(name, [(label, kind) for _, label, kind in spec], rows, len(frame))


def _show(value: object, kind: str, zone: ZoneInfo) -> str:
    if (
        value is None
        or value is pd.NaT
        or value is pd.NA
        or (
            isinstance(value, float) and value != value  # NaN
        )
    ):
        return "–"
    if kind == "time":
        stamp: str = pd.Timestamp(value).tz_convert(zone).strftime("%Y-%m-%d %H:%M")
        return stamp
    if kind == "int":
        return f"{int(value):,}"  # type: ignore[call-overload]
    if kind == "float":
        return f"{float(value):,.3g}" if float(value) < 1 else f"{float(value):,.1f}"  # type: ignore[arg-type]
    if kind == "bool":
        return "yes" if value else "no"
    return str(value) if value != "" else "–"


def findings(summary: dict[str, object]) -> dict[str, int]:
    """The finding counts the summary chart and cards show, in reading order."""
    keys = {
        "unused secrets": "unused_secrets",
        "rotation overdue": "rotation_overdue",
        "no rotation evidence": "rotation_no_evidence",
        "over-broad identities": "overbroad_identities",
        "grants never used": "unused_grants",
        "secrets without owner": "ownership_gaps",
        "open alerts": "alerts_open",
        "coverage gaps": "coverage_gaps",
    }
    return {label: int(summary[key]) for label, key in keys.items()}  # type: ignore[call-overload]


def html(
    review: Review,
    inputs_hourly: pd.DataFrame,
    inputs_days: pd.DataFrame,
    context: dict[str, object],
    limit: int,
) -> bytes:
    """The report page. `context` carries parameters, state hash and sources."""
    period = review.period
    t = review.tables
    figures = {
        "chart-findings": charts.findings(findings(review.summary)),
        "chart-coverage": charts.coverage(
            inputs_days, t["coverage_gaps"], period.since, period.until, period.timezone
        ),
        "chart-activity": charts.activity(inputs_hourly, period.timezone),
        "chart-grants": charts.grants(t["grant_summary"]),
    }
    tables = {
        "coverage": table(review, "coverage", limit),
        "coverage_gaps": table(review, "coverage_gaps", limit),
        "controls": table(review, "controls", limit),
        "secrets": table(review, "secrets", limit, ["reads", "secret"], [False, True]),
        "secret_accessors": table(
            review, "secret_accessors", limit, ["reads", "secret"], [False, True]
        ),
        "identities": table(review, "identities", limit, ["reads", "identity"], [False, True]),
        "overbroad_identities": table(
            review, "overbroad_identities", limit, ["unused", "identity"], [False, True]
        ),
        "unused_grants": table(review, "unused_grants", limit),
        "unused_secrets": table(review, "unused_secrets", limit),
        "stale_rotations": table(review, "stale_rotations", limit),
        "ownership_gaps": table(
            review, "ownership_gaps", limit, ["reads", "secret"], [False, True]
        ),
        "alerts": table(review, "alerts", limit),
        "denied_attempts": table(
            review, "denied_attempts", limit, ["denied", "identity"], [False, True]
        ),
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    zone = ZoneInfo(period.timezone)
    page = env.get_template("access_review.html.j2").render(
        period=period,
        first_day=period.first_day.isoformat(),
        last_day=period.last_day.isoformat(),
        since_utc=period.since.strftime("%Y-%m-%d %H:%M UTC"),
        until_utc=period.until.strftime("%Y-%m-%d %H:%M UTC"),
        s=review.summary,
        notes=review.notes,
        findings=findings(review.summary),
        figures=figures,
        tables=tables,
        coverage_rows=t["coverage"].to_dict(orient="records"),
        local=lambda ts: _show(ts, "time", zone),
        **context,
    )
    return page.encode()
