"""Moved to `pipeline.detection.store` (this name goes once the CLI imports the new one)."""

from pipeline.detection.store import alert_evidence, detect_store, load_detection, train_store

__all__ = ["alert_evidence", "detect_store", "load_detection", "train_store"]
