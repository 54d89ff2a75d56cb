"""The store roles detection needs: the events it judges, the state it keeps, the outbox it
raises alerts into (see `pipeline.store.base`)."""

from __future__ import annotations

from typing import Protocol

from pipeline.store.base import DetectionState, EventLog, Outbox


class DetectionStore(EventLog, DetectionState, Outbox, Protocol):
    """What training, detection and live detection use of a store."""
