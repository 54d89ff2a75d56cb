"""Moved to `pipeline.detection.replay` (this name goes once the CLI imports the new one)."""

from pipeline.detection.replay import MemorySink, load_events, replay, write_alerts

__all__ = ["MemorySink", "load_events", "replay", "write_alerts"]
