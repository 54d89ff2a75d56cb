"""Store rows as JSON documents: what the API answers for one alert or identity, and what
`secretwatch alerts show --json` prints, the same on a store and through the API."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from pipeline.store.base import Outbox


def jsonable(value: Any) -> Any:  # noqa: ANN401 - one cell of a frame
    """A frame cell as JSON: missing as None, timestamps ISO-8601, numpy scalars plain."""
    if isinstance(value, list | tuple | dict | bytes):
        return value
    if value is None or bool(pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: jsonable(v) for k, v in row.items()} for row in frame.to_dict("records")]


def find_alert(store: Outbox, alert_id: str, sinks: list[str]) -> dict[str, Any] | None:
    """One stored alert as `Outbox.alerts` has it (`body` parsed) with `deliveries`, its
    state at each of `sinks`; None if there is no such alert."""
    rows = store.alerts(alert_id=alert_id)  # that one, not every alert filtered here
    if rows.empty:
        return None
    alert = records(rows)[0]
    alert["body"] = orjson.loads(alert["body"])
    state = store.delivery_state(sinks, alert_id=alert_id) if sinks else None
    alert["deliveries"] = [] if state is None else records(state.drop(columns=["alert_id"]))
    return alert
