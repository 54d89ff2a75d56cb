"""Which sink takes which alert, and which alerts are repeats to fold into an open one.

Routing is per sink: a minimum severity and an optional detector list. Folding is global
and decided once per alert (the store keeps the verdict), so every sink agrees: an alert
is folded into the open alert of the same identity when it comes within the suppression
window after it, adds no detector and is no more severe. The open alert then counts one
more repeat, which raises its revision, so every sink receives the count.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from detectors.settings import SEVERITIES
from pipeline.sinks.payloads import AlertRecord, stored_alert
from pipeline.store.base import Outbox, PendingDelivery


class Routing(Protocol):
    """A sink's routing settings (every sink's settings model has them)."""

    @property
    def min_severity(self) -> str: ...

    @property
    def detectors(self) -> list[str] | None: ...


def _detectors(alert: Mapping[str, Any]) -> set[str]:
    """An alert's detectors, from its record or from the store's row of it."""
    return set(alert.get("detectors") or [alert.get("detector")])


def refusal(cfg: Routing, alert: AlertRecord) -> str | None:
    """Why the sink does not take this alert (None: it does).

    >>> class Cfg: min_severity, detectors = "high", ["root_token"]
    >>> refusal(Cfg, {"severity": "medium", "detectors": ["root_token"]})
    'severity medium is below min_severity high'
    >>> refusal(Cfg, {"severity": "high", "detectors": ["dormant"]})
    "detectors dormant are not in the sink's detectors list"
    >>> refusal(Cfg, {"severity": "critical", "detectors": ["dormant", "root_token"]})
    """
    severity = alert["severity"]
    if SEVERITIES.index(severity) < SEVERITIES.index(cfg.min_severity):
        return f"severity {severity} is below min_severity {cfg.min_severity}"
    if cfg.detectors and not _detectors(alert) & set(cfg.detectors):
        names = ", ".join(sorted(_detectors(alert)))
        return f"detectors {names} are not in the sink's detectors list"
    return None


def _time(value: Any) -> datetime:
    when: datetime = pd.Timestamp(value).to_pydatetime()
    return when


def covers(open_alert: Mapping[str, Any], alert: AlertRecord) -> bool:
    """Whether `alert` says nothing `open_alert` (the store's row of it) did not: no new
    detector, no higher severity."""
    return _detectors(alert) <= _detectors(open_alert) and SEVERITIES.index(
        alert["severity"]
    ) <= SEVERITIES.index(open_alert["severity"])


def _open_alerts(store: Outbox, identity: str) -> list[dict[str, Any]]:
    """The stored alerts of exactly this identity (`*` in a name is no wildcard here)."""
    frame = store.alerts(identity=identity)
    rows = []
    for row in frame.to_dict(orient="records"):
        if row["identity"] != identity:
            continue
        row["detectors"] = [d for d in str(row["detectors"]).split(",") if d]
        rows.append(row)
    return rows


def fold_target(store: Outbox, p: PendingDelivery, window: timedelta) -> str | None:
    """The open alert `p` repeats, if any: same identity, not resolved, not itself folded,
    ending at most `window` before `p` starts, covering `p`; the latest such one."""
    if window <= timedelta(0):
        return None
    start = _time(p.alert["window_start"])
    best: tuple[datetime, str] | None = None
    for row in _open_alerts(store, p.alert["identity"]):
        if row["id"] == p.alert_id or _present(row.get("resolution")):
            continue
        if _present(row.get("folded_into")):
            continue
        end = _time(row["window_end"])
        if _time(row["window_start"]) >= start or start - end > window:
            continue
        if covers(row, stored_alert(p.alert)) and (best is None or end > best[0]):
            best = (end, row["id"])
    return best[1] if best else None


def still_covered(store: Outbox, p: PendingDelivery) -> bool:
    """A folded alert stays folded while its open alert still covers it; one that grew a
    new detector or a higher severity since is delivered on its own."""
    for row in _open_alerts(store, p.alert["identity"]):
        if row["id"] == p.folded_into:
            return covers(row, stored_alert(p.alert))
    return False


def _present(value: Any) -> bool:
    """Not None, NaN or NA: frames from either store mark a missing value differently."""
    return value is not None and not bool(pd.isna(value))
