"""The JSON-lines file (embedded default) and standard output sinks."""

from __future__ import annotations

import io
import json

import pytest
from outbox import alert, deliver, many, save, sink

from pipeline.errors import ConfigError
from pipeline.sinks.jsonl import StdoutLinesSink


def test_file_lines_are_native_alerts_with_revision(store, tmp_path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    alerts = many(store, 3)
    deliver(store, [sink(name="file", type="jsonl", path=str(path))])
    save(store, alert("svc-0000", "2026-05-01T00:00:00Z", evidence=("e0", "e9")))
    deliver(store, [sink(name="file", type="jsonl", path=str(path))])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["id"], d["revision"]) for d in lines[:3]] == [
        (a["id"], 1) for a in sorted(alerts, key=lambda a: a["id"])
    ]
    assert (lines[3]["id"], lines[3]["revision"], lines[3]["evidence"]) == (
        alerts[0]["id"],
        2,
        ["e0", "e9"],
    )


def test_ocsf_lines_carry_id_and_revision(store, tmp_path) -> None:
    path = tmp_path / "alerts.jsonl"
    [a] = save(store, alert())
    deliver(store, [sink(name="file", type="jsonl", path=str(path), format="ocsf")])
    [doc] = [json.loads(line) for line in path.read_text().splitlines()]
    assert (doc["id"], doc["revision"], doc["class_uid"]) == (a["id"], 1, 2004)


def test_an_unwritable_path_names_the_key(store, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot open .* fix `path`"):
        deliver(store, [sink(name="file", type="jsonl", path=str(blocker / "alerts.jsonl"))])
    # the file in the way is named, not "File exists" (what mkdir -p says)
    with pytest.raises(ConfigError, match=f"{blocker} is a file, not a directory") as caught:
        deliver(store, [sink(name="file", type="jsonl", path=str(blocker / "a" / "x.jsonl"))])
    assert "File exists" not in str(caught.value)


def test_stdout_lines(store) -> None:
    stream = io.BytesIO()
    cfg = sink(name="out", type="stdout")
    [a] = save(store, alert())
    deliver(store, [cfg], senders={"out": StdoutLinesSink(cfg, stream)})
    [doc] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert doc["id"] == a["id"]
