"""Moved to `pipeline.detection.live` (this name goes once the CLI imports the new one)."""

from pipeline.detection.live import LiveDetection, Owner

__all__ = ["LiveDetection", "Owner"]
