"""Training and detection over a real DuckDB store: `train_store`, `load_detection` and
`detect_store` on the detector tests' controlled world, with a few attacks injected after
the training window."""

from __future__ import annotations

import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from detectors.settings import DetectorsConfig
from pipeline.detection.store import detect_store, load_detection, train_store
from pipeline.errors import StoreError
from pipeline.store.base import EventFilter
from pipeline.store.duckdb import DuckDBStore

WORLD = Path(__file__).parent / "detectors"
if str(WORLD) not in sys.path:  # the detector tests' world, whichever test runs first
    sys.path.insert(0, str(WORLD))
from world import START, TRAIN_DAYS, after, row, us, world  # noqa: E402

CUT = START + timedelta(days=TRAIN_DAYS)
CANARY = "hunter2-not-for-alerts"  # stands in for anything a log line holds besides names
ROOT = row("root", after(3), kind="root")._replace(
    error=f"1 error occurred: {CANARY}", note=CANARY, user_agent=CANARY
)
STRAY = row("orders/orders-api", after(10), "secret/payments/db")  # another team's secret
END = after(12)  # the normal traffic stops here, to keep detection short
IDENTITIES = ["nightly-report", "orders/orders-api", "payments/payments-api"]


def _events() -> list:
    normal = [r for r in world(TRAIN_DAYS + 1) if r.ts_us < us(END)]
    return sorted([*normal, ROOT, STRAY], key=lambda r: r.ts_us)


def _copy(source: Path, target: Path) -> Path:
    """A private copy of a closed store file."""
    shutil.copy(source, target)
    return target


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Store files shared read-only by the tests, which copy them before writing:
    `events` (ingested, never trained), `trained` (trained until CUT) and `detected`
    (trained, then detected in one uninterrupted run)."""
    folder = tmp_path_factory.mktemp("detect")
    events = folder / "events.duckdb"
    with DuckDBStore(events) as store:
        store.write_batch(_events())
    trained = _copy(events, folder / "trained.duckdb")
    with DuckDBStore(trained) as store:
        train_store(store, DetectorsConfig(), CUT)
    detected = _copy(trained, folder / "detected.duckdb")
    with DuckDBStore(detected) as store:
        detect_store(store, DetectorsConfig())
    return {"events": events, "trained": trained, "detected": detected}


def _bodies(store: DuckDBStore) -> list[dict]:
    return [orjson.loads(body) for body in store.alerts()["body"]]


def _snapshot(store: DuckDBStore) -> tuple:
    """Everything detection keeps in a store, for comparing two runs."""
    return (
        [(a["id"], a["evidence"]) for a in _bodies(store)],
        list(store.alerts()["body"]),
        store.baselines(),
        store.detection_state("meta"),
        store.detection_state("incidents"),
    )


def test_the_attacks_are_alerted_with_their_evidence(files: dict[str, Path], tmp_path: Path):
    with DuckDBStore(_copy(files["trained"], tmp_path / "s.duckdb")) as store:
        judged: list[int] = []
        found = detect_store(store, DetectorsConfig(), on_batch=judged.append)
        assert sum(judged) == store.count(EventFilter(since=CUT))  # every later event judged
        by_identity = {a.identity: a for a in found}
        assert set(by_identity) == {"root", "orders/orders-api"}  # a quiet day otherwise

        root = by_identity["root"]
        assert "root_token" in root.detectors
        assert root.severity == "critical"
        assert root.evidence == [ROOT.event_id]
        stray = by_identity["orders/orders-api"]
        assert "unexpected_accessor" in stray.detectors
        assert STRAY.event_id in stray.evidence
        assert "secret/payments/db" in stray.explanation
        assert stray.timestamp == after(10)
        for alert in found:  # evidence names stored events of the alert's identity
            assert alert.evidence_count == len(alert.evidence)
            cited = store.events()
            cited = cited[cited["event_id"].isin(alert.evidence)]
            assert len(cited) == len(alert.evidence)
            assert set(cited["identity"]) == {alert.identity}

        stored = store.alerts()
        assert sorted(stored["id"]) == sorted(a.id for a in found)
        for alert in found:
            body = orjson.loads(stored.set_index("id").loc[alert.id, "body"])
            assert body == alert.model_dump(mode="json")
        meta = orjson.loads(store.detection_state("meta") or b"{}")
        assert meta["watermark_us"] == us(END)  # the end of the batch holding the last event


def test_running_again_raises_nothing_new(files: dict[str, Path], tmp_path: Path):
    with DuckDBStore(_copy(files["detected"], tmp_path / "s.duckdb")) as store:
        before = _snapshot(store)
        assert len(before[0]) == 2
        assert detect_store(store, DetectorsConfig()) == []
        assert detect_store(store, DetectorsConfig(), until=after(6)) == []  # behind the mark
        assert _snapshot(store) == before
        ids = list(store.alerts()["id"])
        assert len(ids) == len(set(ids))


class Killed(Exception):
    """Stands in for the process dying mid-run."""


@pytest.mark.parametrize("stop", [after(5), after(5.5)], ids=["on-a-batch", "mid-batch"])
def test_a_killed_run_resumes_exactly(files: dict[str, Path], tmp_path: Path, stop: datetime):
    with DuckDBStore(_copy(files["trained"], tmp_path / "s.duckdb")) as store:
        first = detect_store(store, DetectorsConfig(), until=stop)
        assert [a.identity for a in first] == ["root"]
        meta = orjson.loads(store.detection_state("meta") or b"{}")
        assert meta["watermark_us"] == us(after(5))  # only whole batches are judged

        batches = 0

        def die(_: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                raise Killed

        with pytest.raises(Killed):
            detect_store(store, DetectorsConfig(), on_batch=die)
        assert orjson.loads(store.detection_state("meta") or b"{}") == meta  # nothing half-done

        rest = detect_store(store, DetectorsConfig())
        assert [a.identity for a in rest] == ["orders/orders-api"]
        resumed = _snapshot(store)
    with DuckDBStore(files["detected"], read_only=True) as uninterrupted:
        assert resumed == _snapshot(uninterrupted)


def test_stored_baselines_equal_the_trained_ones(files: dict[str, Path], tmp_path: Path):
    cfg = DetectorsConfig()
    with DuckDBStore(_copy(files["events"], tmp_path / "s.duckdb")) as store:
        trained = train_store(store, cfg, CUT)
        detection, watermark = load_detection(store, cfg)
        loaded = detection.base
        assert watermark == us(CUT)
        assert dict(loaded.to_rows()) == dict(trained.to_rows())  # byte for byte
        assert loaded.meta() == trained.meta()
        assert sorted(loaded.names) == sorted(trained.names) == ["alice", *IDENTITIES]
        assert (loaded.accessors, loaded.net_users, loaded.area_users) == (
            trained.accessors,
            trained.net_users,
            trained.area_users,
        )
        assert trained.model is not None
        assert type(loaded.model) is type(trained.model)
        assert detection.open == {}


def test_a_retrain_learns_only_from_its_window(files: dict[str, Path], tmp_path: Path):
    cfg = DetectorsConfig()
    since = CUT - timedelta(days=14)
    with DuckDBStore(_copy(files["trained"], tmp_path / "s.duckdb")) as store:
        trained = train_store(store, cfg, CUT, since=since)
        assert trained.version == 2  # one on from the first training
        assert dict(store.baselines()) == dict(trained.to_rows())  # the old ones replaced
        assert sorted(trained.names) == ["alice", *IDENTITIES]  # nothing after CUT (root)
        assert int(trained.first_us.min()) >= us(since)
        assert int(trained.last_us.max()) < us(CUT)
        loaded, watermark = load_detection(store, cfg)
        assert watermark == us(CUT)
        days = loaded.base.active_days[loaded.base.index["nightly-report"]]
        assert int(days) == 14


def test_a_retrain_never_learns_the_evidence_of_alerts(files: dict[str, Path], tmp_path: Path):
    cfg = DetectorsConfig()
    with DuckDBStore(_copy(files["detected"], tmp_path / "s.duckdb")) as store:
        retrained = train_store(store, cfg, END)  # a window that holds both attacks
        assert "root" not in retrained.index  # its only event raised an alert
        orders = retrained.index["orders/orders-api"]
        assert "secret/payments/db" not in retrained.secrets[orders]
        assert "secret/orders/db" in retrained.secrets[orders]  # its normal reads are kept


def test_open_incidents_survive_a_restart(files: dict[str, Path], tmp_path: Path):
    cfg = DetectorsConfig()
    with DuckDBStore(_copy(files["trained"], tmp_path / "s.duckdb")) as store:
        [alert] = detect_store(store, cfg, until=after(5))
        detection, watermark = load_detection(store, cfg)
        assert watermark == us(after(5))
        assert list(detection.open) == ["root"]
        assert detection.open["root"].alert() == alert


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"window_minutes": 5}, "detectors.window_minutes=10"),
        ({"timezone": "Europe/Berlin"}, "detectors.timezone=UTC"),
        ({"rate_history_weeks": 4}, "detectors.rate_history_weeks=8"),
    ],
)
def test_a_config_unlike_the_trained_one_is_refused(
    files: dict[str, Path], tmp_path: Path, change: dict, named: str
):
    with DuckDBStore(_copy(files["trained"], tmp_path / "s.duckdb")) as store:
        before = _snapshot(store)
        with pytest.raises(StoreError) as info:
            detect_store(store, DetectorsConfig(**change))
        message = str(info.value)
        assert named in message
        assert str(next(iter(change.values()))) in message  # what the config says now
        assert "secretwatch train" in message  # the fix
        assert _snapshot(store) == before


def test_detect_before_train_says_to_train(files: dict[str, Path], tmp_path: Path):
    with DuckDBStore(_copy(files["events"], tmp_path / "s.duckdb")) as store:
        with pytest.raises(StoreError, match="run `secretwatch train`"):
            detect_store(store, DetectorsConfig())
        with pytest.raises(StoreError, match="no baselines yet"):
            load_detection(store, DetectorsConfig())
        assert store.detection_state("meta") is None
        assert len(store.alerts()) == 0


def test_nothing_but_names_leaves_the_events(files: dict[str, Path]):
    with DuckDBStore(files["detected"], read_only=True) as store:
        stored = store.alerts()
        assert "root" in set(stored["identity"])
        text = [*stored["body"], *stored["explanation"]]
        kept = [body.decode() for _, body in store.baselines()]
        state = [(store.detection_state(k) or b"").decode() for k in ("meta", "incidents")]
        for blob in (*text, *kept, *state):
            assert CANARY not in blob
        # what an alert may cite: event ids, identities and secret paths
        root = orjson.loads(stored.set_index("identity").loc["root", "body"])
        assert root["evidence"] == [ROOT.event_id]
        assert "secret/orders/db" in root["explanation"]
        events = store.events(EventFilter(identity="root"))
        assert CANARY in events["note"][0]  # the store has it, so the check above can fail
