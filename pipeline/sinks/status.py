"""Delivery state for people: one summary per alert from the store's per-sink rows."""

from __future__ import annotations

from typing import Any

import pandas as pd

_ORDER = ("dead", "pending", "delivered", "suppressed")


def _value(v: Any) -> Any:
    """JSON-ready: NaN/NaT/NA become None, timestamps ISO strings, numpy ints ints."""
    if v is None or (not isinstance(v, list | tuple | dict) and bool(pd.isna(v))):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def summarize(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of `Store.delivery_state` grouped into one dict per alert, in frame order:
    the alert's headline fields and a `deliveries` list (one entry per sink)."""
    alerts: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict(orient="records"):
        row = {k: _value(v) for k, v in row.items()}
        alert = alerts.setdefault(
            row["alert_id"],
            {
                "id": row["alert_id"],
                "timestamp": row["ts"],
                "severity": row["severity"],
                "identity": row["identity"],
                "detectors": [d for d in str(row["detectors"]).split(",") if d],
                "revision": row["revision"],
                "resolution": row["resolution"],
                "repeats": row["repeats"],
                "folded_into": row["folded_into"],
                "deliveries": [],
            },
        )
        alert["deliveries"].append(
            {
                k: row[k]
                for k in (
                    "sink",
                    "state",
                    "attempts",
                    "delivered_revision",
                    "last_status",
                    "last_error",
                    "next_attempt_at",
                    "first_failed_at",
                    "delivered_at",
                )
            }
        )
    return list(alerts.values())


def headline(alert: dict[str, Any]) -> str:
    """Per-sink states in a few words, worst first: `splunk dead (HTTP 401), file delivered`.

    >>> headline({"deliveries": [{"sink": "file", "state": "delivered", "last_status": 200},
    ...                          {"sink": "splunk", "state": "dead", "last_status": 401}]})
    'splunk dead (HTTP 401), file delivered'
    """
    parts = []
    for d in sorted(alert["deliveries"], key=lambda d: (_ORDER.index(d["state"]), d["sink"])):
        text = f"{d['sink']} {d['state']}"
        if d["state"] in ("dead", "pending") and d.get("last_status"):
            text += f" (HTTP {d['last_status']})"
        elif d["state"] == "pending" and d.get("attempts"):
            text += f" (attempt {d['attempts']})"
        parts.append(text)
    return ", ".join(parts)
