"""The one runtime that runs live detection inside a process: `ingest --follow --detect`
(every identity is this process's), the judge stage of `secretwatch run` (the identities
of its partitions) and `secretwatch serve`.

The caller stores the events and hands them over (`feed`); the runtime judges them, keeps
the alerts in the store's outbox, tells its listeners (a console, say) and wakes the
delivery thread, if one delivers from this process, so alerts leave at once rather than at
its next poll. Constructing it does no I/O: `own` loads the detection state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from detectors.alert import Alert
from detectors.settings import DetectorsConfig
from pipeline.detection.live import LiveDetection, Owner
from pipeline.detection.roles import DetectionStore
from pipeline.record import EventRow

if TYPE_CHECKING:
    from pipeline.sinks.embed import DeliveryHandle

EMBEDDED = "embedded"  # the member name, and partition key, of a process that owns all


def everything(identity: str) -> str:
    """The owner of a process that owns every identity."""
    return EMBEDDED


class EmbeddedDetection:
    """Live detection in this process, over the identities an owner function gives it."""

    def __init__(
        self,
        store: DetectionStore,
        cfg: DetectorsConfig,
        member: str = EMBEDDED,
        lateness_seconds: float = 60.0,
        snapshot_seconds: float = 30.0,
        on_alerts: Callable[[list[Alert]], None] | None = None,
    ) -> None:
        self.store = store
        self.live = LiveDetection(store, cfg, member, lateness_seconds, snapshot_seconds)
        self.on_alerts = on_alerts
        self.delivery: DeliveryHandle | None = None  # set when sinks are delivered here

    def own(self, owner: Owner = everything) -> None:
        """Take over the identities `owner` maps to a partition key (all, by default):
        load their detection state and judge again what was stored but not learned from.
        Also the way back after `feed` failed."""
        self.live.assign(owner)

    def feed(self, rows: Sequence[EventRow], clock_us: int | None = None) -> list[Alert]:
        """Judge stored events (`clock_us`: the slowest partition's clock, if the caller
        knows one); return the alerts raised or grown, already in the outbox."""
        alerts = self.live.process(rows, clock_us=clock_us, stored=True)
        if alerts and self.on_alerts is not None:
            self.on_alerts(alerts)
        if alerts and self.delivery is not None:
            self.delivery.wake()  # deliver now, not at the next poll
        return alerts

    def anchor(self, rows: list[EventRow]) -> None:
        """A follower's hook (`before_store`): see `LiveDetection.anchor`."""
        self.live.anchor(rows)

    def stored(self, rows: list[EventRow]) -> None:
        """A follower's hook (`on_stored`): judge what it has just stored."""
        self.feed(rows)

    def snapshot(self) -> None:
        """Store the owned identities' baselines, watermarks and open incidents."""
        self.live.snapshot()

    @property
    def busy(self) -> bool:
        """A whole judging runs in the background: `feed([])` soon, to raise what it finds."""
        return self.live.judging.running

    @property
    def late_count(self) -> int:
        """Owned events that came late: stored, not judged."""
        return self.live.late_count

    def close(self) -> list[BaseException]:
        """Stop delivering once what is in flight is recorded (what is left stays in the
        outbox for the next run, or `secretwatch deliver`); the errors that stopped it."""
        if self.delivery is None:
            return []
        self.delivery.stop()
        return list(self.delivery.errors)
