"""Conversions at detection's edge: event rows and store frames into prepared events, and
stored alert bodies into alerts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd

from detectors.alert import Alert
from detectors.events import Events, prepare
from detectors.settings import DetectorsConfig
from pipeline.record import FIELDS, EventRow
from pipeline.store.base import Outbox
from pipeline.store.rows import rows_to_arrow


def prepared(rows: list[EventRow], cfg: DetectorsConfig) -> Events:
    """Rows (in time order) prepared for the detectors."""
    return prepare(rows_to_arrow(rows).to_pandas(), cfg.timezone, cfg.window_minutes)


def event_rows(frame: pd.DataFrame) -> list[EventRow]:
    """A store frame as event rows (NaN/None -> None)."""
    columns: list[list[Any]] = []
    for name in FIELDS:
        if name == "ts_us":
            columns.append(frame["ts"].astype("datetime64[us, UTC]").astype("int64").tolist())
        elif name in frame:
            columns.append([v if isinstance(v, str) else None for v in frame[name].tolist()])
        else:
            columns.append([None] * len(frame))
    return [EventRow(*r) for r in zip(*columns, strict=True)]


def stored_alerts(store: Outbox) -> Iterator[Alert]:
    """Every stored alert, as detection raised it."""
    for body in store.alerts().get("body", []):
        yield Alert.model_validate(orjson.loads(body))
