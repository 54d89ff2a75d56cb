"""The detection checkpoint: each persisted document round-trips, reads the bytes stores
have always held, and refuses what it cannot read with the fix."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detectors.alert import Finding, Incident
from detectors.baseline import Baselines
from detectors.incidents import IncidentDoc
from detectors.settings import DetectorsConfig
from pipeline.detection import checkpoint as cp
from pipeline.errors import StoreError
from pipeline.store.duckdb import DuckDBStore

# As the code before the checkpoint models wrote them.
OLD_META = (
    b'{"tz":"UTC","window_minutes":10,"ring_weeks":8,"version":3,'
    b'"trained_until_us":100,"observed_until_us":200,"watermark_us":300}'
)
OLD_PARTITION = (
    b'{"watermark_us":300,"member":"m","version":3,"incidents":[{"identity":"root",'
    b'"baseline_version":3,"findings":[{"detector":"root_token","identity":"root",'
    b'"start_us":0,"end_us":10,"at_us":5,"score":1.0,"threshold":1.0,"severity":"critical",'
    b'"explanation":"root.","evidence":["e1"]}]}]}'
)


def test_documents_written_before_load_and_encode_to_the_same_bytes():
    meta = cp.Meta.decode(OLD_META, cp.META)
    assert (meta.version, meta.watermark_us, meta.layout.tz) == (3, 300, "UTC")
    assert meta.encode() == OLD_META
    state = cp.PartitionState.decode(OLD_PARTITION, "live/events/0")
    assert state.encode() == OLD_PARTITION
    [doc] = state.incidents
    assert doc.incident().findings[0].evidence == ("e1",)
    assert cp.LateList.decode(b'{"late": []}', "k") == cp.LateList()  # a snapshot's clear
    late = cp.LateList.decode(b'{"start":5,"late":["a","b"]}', "k")
    assert (late.start, late.late) == (5, ("a", "b"))
    assert cp.Origin.decode(b'{"watermark_us":7,"member":"m"}', cp.ORIGIN).watermark_us == 7


def test_incidents_round_trip():
    incident = Incident("root", baseline_version=2)
    incident.add(Finding("root_token", "root", 0, 10, 5, 1.0, 1.0, "critical", "r.", ("e",)))
    raw = cp.encode_incidents((IncidentDoc.of(incident),))
    assert raw == orjson.dumps(orjson.loads(raw))
    assert [d.incident() for d in cp.decode_incidents(raw)] == [incident]
    assert cp.decode_incidents(None) == ()


def test_a_newer_format_or_an_unreadable_document_is_refused_with_the_fix():
    newer = orjson.dumps({**orjson.loads(OLD_META), "format": 2})
    with pytest.raises(StoreError, match="format 2.*Upgrade secretwatch"):
        cp.Meta.decode(newer, cp.META)
    with pytest.raises(StoreError, match="'meta' is not JSON"):
        cp.Meta.decode(b"{", cp.META)
    with pytest.raises(StoreError, match="'meta' is not readable"):
        cp.Meta.decode(b'{"tz":"UTC"}', cp.META)


def test_keys_are_spelled_here():
    assert cp.partition_key("events/3") == "live/events/3"
    assert cp.late_key("events/3") == "live/events/3/late"


@pytest.mark.parametrize(
    "change", [{"window_minutes": 5}, {"timezone": "Europe/Berlin"}, {"rate_history_weeks": 4}]
)
def test_every_loader_refuses_another_layout(tmp_path: Path, change: dict):
    base = Baselines(version=1)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        state = {cp.META: cp.Meta.of(base, 0).encode(), cp.MODEL: cp.encode_model(None)}
        store.save_detection(base.to_rows(), state, [], 1, replace=True)
        loaded = cp.load_baselines(store, DetectorsConfig(), cp.load_meta(store))
        assert loaded.meta() == base.meta() and loaded.model is None
        with pytest.raises(StoreError, match="Run `secretwatch train` again"):
            cp.load_baselines(store, DetectorsConfig(**change), cp.load_meta(store))
        # without training, the config's layout is the one
        assert cp.load_baselines(store, DetectorsConfig(**change), None).window_minutes in (5, 10)
