"""The embedded runtime: owns every identity by default, judges what the caller stored,
keeps alerts in the outbox and tells its listener."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from detectors.alert import Alert
from detectors.settings import DetectorsConfig
from pipeline.detection.embedded import EMBEDDED, EmbeddedDetection, everything
from pipeline.detection.store import train_store
from pipeline.store.duckdb import DuckDBStore

WORLD = Path(__file__).parents[1] / "detectors"
if str(WORLD) not in sys.path:
    sys.path.insert(0, str(WORLD))
from world import START, TRAIN_DAYS, after, row, us, world  # noqa: E402

CUT = START + timedelta(days=TRAIN_DAYS)


def test_alerts_reach_the_outbox_and_the_listener(tmp_path: Path):
    heard: list[Alert] = []
    root = row("root", after(3.2), kind="root")
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write_batch([r for r in world() if r.ts_us < us(CUT)])
        train_store(store, DetectorsConfig(), CUT)
        runtime = EmbeddedDetection(store, DetectorsConfig(), on_alerts=heard.extend)
        runtime.own()
        store.write_batch([root])
        raised = runtime.feed([root], clock_us=root.ts_us)
        assert [a.identity for a in raised] == ["root"] and heard == raised
        assert list(store.alerts()["id"]) == [raised[0].id]
        assert runtime.feed([root]) == [] and runtime.late_count == 0  # a copy: judged once
        runtime.snapshot()
        assert store.detection_state("live/" + EMBEDDED) is not None
        assert runtime.close() == []  # nothing delivered from here
    assert everything("anyone") == EMBEDDED
