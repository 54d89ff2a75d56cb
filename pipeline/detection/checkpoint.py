"""The detection checkpoint: every piece of detection state the store keeps, one frozen
model and one encoder/decoder each, under the keys only this module spells.

- `meta` (`Meta`): the baselines' layout and version, and the watermark of `detect`;
- `incidents` (`Incidents`): the open incidents of `detect`;
- `model`: the multivariate model, pickled;
- `live/<partition>` (`PartitionState`): a live member's watermark and open incidents;
- `live/<partition>/late` (`LateList`): late events a reload must not judge;
- `live/origin` (`Origin`): where live detection began, until a snapshot says more;
- the baselines themselves: one document per identity (`detectors.baseline`).

The bytes are those the store has always held (format 1, written before formats were
stamped: a document without `format` is format 1), so every store written before loads.
A document of a newer format is refused with the fix, never misread.

Every loader of baselines goes through `load_baselines`, which refuses baselines trained
with another time layout than the config's (window, time zone, rate history).
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar, Self, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from detectors.baseline import Baselines
from detectors.incidents import IncidentDoc
from detectors.settings import DetectorsConfig
from pipeline.errors import StoreError
from pipeline.store.base import DetectionState

META, INCIDENTS, MODEL = "meta", "incidents", "model"
LIVE = "live/"
ORIGIN = LIVE + "origin"
T = TypeVar("T", bound=BaseModel)


def partition_key(partition: str) -> str:
    """The key of a live partition's state, e.g. `live/events/3`."""
    return LIVE + partition


def late_key(partition: str) -> str:
    """The key of a live partition's late-event list, e.g. `live/events/3/late`."""
    return LIVE + partition + "/late"


class _Doc(BaseModel):
    """A persisted document: frozen, extra keys refused, `format` checked on read."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    FORMAT: ClassVar[int] = 1

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=self._omit_none()))

    @classmethod
    def _omit_none(cls) -> bool:
        return False

    @classmethod
    def decode(cls, raw: bytes, key: str) -> Self:
        doc = _loads(raw, key)
        if not isinstance(doc, dict):
            raise StoreError(f"detection state {key!r} is not a JSON object")
        _check_format(doc, cls.FORMAT, key)
        return _validated(cls, {k: v for k, v in doc.items() if k != "format"}, key)


class Layout(BaseModel):
    """The time layout baselines are kept in; a config must match it to use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tz: str
    window_minutes: int
    ring_weeks: int

    @classmethod
    def of(cls, cfg: DetectorsConfig) -> Layout:
        return cls(
            tz=cfg.timezone, window_minutes=cfg.window_minutes, ring_weeks=cfg.rate_history_weeks
        )

    def check(self, cfg: DetectorsConfig) -> None:
        """StoreError naming both layouts and the fix unless `cfg` uses this one."""
        wanted = Layout.of(cfg)
        if wanted != self:
            raise StoreError(
                "the stored baselines were trained with detectors.window_minutes="
                f"{self.window_minutes}, detectors.timezone={self.tz} and "
                f"detectors.rate_history_weeks={self.ring_weeks}; the config says "
                f"{wanted.window_minutes}, {wanted.tz} and {wanted.ring_weeks}. Run "
                "`secretwatch train` again, or restore those settings"
            )


class Meta(_Doc):
    """`meta`: what `train` and `detect` write about the baselines, and detect's watermark
    (the end of the last batch judged)."""

    tz: str
    window_minutes: int
    ring_weeks: int
    version: int
    trained_until_us: int
    observed_until_us: int
    watermark_us: int

    @classmethod
    def of(cls, base: Baselines, watermark_us: int) -> Meta:
        return cls.model_validate({**base.meta(), "watermark_us": int(watermark_us)})

    @property
    def layout(self) -> Layout:
        return Layout(tz=self.tz, window_minutes=self.window_minutes, ring_weeks=self.ring_weeks)

    def baseline_args(self) -> dict[str, Any]:
        """What `Baselines.from_rows` takes besides the rows."""
        return self.model_dump(exclude={"watermark_us"})


class PartitionState(_Doc):
    """`live/<partition>`: the watermark (first batch not learned from) and the open
    incidents of a live member's partition."""

    watermark_us: int
    member: str
    version: int = 0
    incidents: tuple[IncidentDoc, ...]


class LateList(_Doc):
    """`live/<partition>/late`: events that came late since the last snapshot, and where
    learning had got when they came (None: a list cleared by a snapshot)."""

    start: int | None = None
    late: tuple[str, ...] = ()

    @classmethod
    def _omit_none(cls) -> bool:
        return True


class Origin(_Doc):
    """`live/origin`: where live detection began."""

    watermark_us: int
    member: str


def save_origin(store: DetectionState, start_us: int, member: str, version: int = 0) -> None:
    """Note where live detection began (the earliest start noted is kept): until the first
    snapshot, it is where judging again starts after a crash or a kill."""
    raw = store.detection_state(ORIGIN)
    if raw is not None:
        start_us = min(start_us, Origin.decode(raw, ORIGIN).watermark_us)
    state = {ORIGIN: Origin(watermark_us=start_us, member=member).encode()}
    store.save_detection([], state, [], version)


_INCIDENTS = TypeAdapter(tuple[IncidentDoc, ...])


def encode_incidents(incidents: tuple[IncidentDoc, ...]) -> bytes:
    """`incidents`: detect's open incidents."""
    return orjson.dumps(_INCIDENTS.dump_python(incidents, mode="json"))


def decode_incidents(raw: bytes | None) -> tuple[IncidentDoc, ...]:
    if raw is None:
        return ()
    try:
        return _INCIDENTS.validate_python(_loads(raw, INCIDENTS))
    except ValidationError as exc:
        raise StoreError(f"detection state {INCIDENTS!r} is not readable: {exc}") from None


def encode_model(model: object) -> bytes:
    """`model`: the multivariate model, pickled."""
    return pickle.dumps(model)


def load_model(store: DetectionState) -> object:
    raw = store.detection_state(MODEL)
    # The store file is trusted as much as the code that wrote it (same owner, same host).
    return pickle.loads(raw) if raw else None  # noqa: S301


def load_meta(store: DetectionState) -> Meta | None:
    raw = store.detection_state(META)
    return Meta.decode(raw, META) if raw is not None else None


def load_baselines(store: DetectionState, cfg: DetectorsConfig, meta: Meta | None) -> Baselines:
    """Every stored baseline and the model, in the layout `meta` names (the config's when
    nothing was trained: `secretwatch run` keeps only what its snapshots wrote). Refuses
    baselines of another layout than the config's."""
    if meta is not None:
        meta.layout.check(cfg)
        args = meta.baseline_args()
    else:
        args = {"tz": cfg.timezone, "window_minutes": cfg.window_minutes}
        args["ring_weeks"] = cfg.rate_history_weeks
    try:
        base = Baselines.from_rows(store.baselines(), **args)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    base.model = load_model(store)
    return base


def _loads(raw: bytes, key: str) -> Any:  # noqa: ANN401 - a JSON document
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"detection state {key!r} is not JSON: {exc}") from None


def _check_format(doc: dict[str, Any], known: int, key: str) -> None:
    found = doc.get("format", 1)
    if found != known:
        raise StoreError(
            f"detection state {key!r} has format {found}; this secretwatch reads format "
            f"{known}. Upgrade secretwatch, or run `secretwatch train` to start again"
        )


def _validated(cls: type[T], doc: dict[str, Any], key: str) -> T:
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        raise StoreError(f"detection state {key!r} is not readable: {exc}") from None
