"""Per-identity baselines: what normal access looks like for each service or person.

Learned from a training window and updated online, batch by batch, from the same code path
(`learn` is `update` on an empty baseline), so the two can never drift apart. State is kept
as arrays indexed by identity (struct of arrays) so a batch updates every identity in a few
vectorized steps; `to_rows`/`from_rows` turn it into one JSON document per identity for the
store, which is what lets a restarted process, or a Kafka member that takes over some
identities, continue where the last one stopped.

What is kept per identity:
- time: in how many weeks each hour of the week was used, and in how many weekdays and
  weekend days each hour of the day was used (the profile is smoothed over neighbouring hours
  and pooled across days when judged, so two weeks of history do not make every new hour
  look strange);
- rate: requests per hour for each hour of the week over the last N weeks (a ring buffer),
  which carries the daily and weekly seasonality;
- what and where: the secrets it touched, the folders ("areas") they live in, the networks
  it came from, and how often it picked up new ones (people roam; services do not);
- bursts: its worst 10-minute window of denied requests and of distinct secrets touched;
- activity: first and last seen, active days, longest silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd

from detectors.events import DAY_US, HOUR_US, WEEK_US

FORMAT = 1  # the layout of one identity's stored document; bump when it changes


@dataclass
class Baselines:
    """Every identity's baseline, plus the version stamped on alerts that used it."""

    tz: str = "UTC"
    window_minutes: int = 10
    ring_weeks: int = 8
    version: int = 0
    trained_until_us: int = 0
    observed_until_us: int = 0
    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    kind: list[str] = field(default_factory=list)
    first_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    events: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    active_days: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    max_gap_days: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    how_weeks: np.ndarray = field(default_factory=lambda: np.zeros((0, 168), np.int32))
    how_last: np.ndarray = field(default_factory=lambda: np.zeros((0, 168), np.int64))
    daytype_days: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 24), np.int32))
    daytype_last: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 24), np.int64))
    ring: np.ndarray = field(default_factory=lambda: np.zeros((0, 168, 8), np.int32))
    denied_max: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distinct_max: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    net_new_days: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    area_new_days: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    secrets: list[set[str]] = field(default_factory=list)
    areas: list[set[str]] = field(default_factory=list)
    nets: list[set[str]] = field(default_factory=list)
    # Derived on load and kept current: who reads each secret, who comes from each network.
    accessors: dict[str, set[str]] = field(default_factory=dict)
    net_users: dict[str, set[str]] = field(default_factory=dict)
    area_users: dict[str, set[str]] = field(default_factory=dict)
    # The multivariate model, fitted at training time (see detectors.multivariate).
    model: object | None = None

    def __len__(self) -> int:
        return len(self.names)

    def ids(self, identities: np.ndarray | pd.Series) -> np.ndarray:
        """Identity names -> row numbers (-1 for identities without a baseline)."""
        get = self.index.get
        return np.fromiter((get(x, -1) for x in identities), np.int64, len(identities))

    def warm(self, rows: np.ndarray, now_us: int, min_active_days: int, min_span_days: int):
        """Which identities have enough history to be judged against it (cold start)."""
        rows = np.asarray(rows)
        known = rows >= 0
        safe = np.where(known, rows, 0)
        span = (now_us - self.first_us[safe]) / DAY_US if len(self) else np.zeros(len(rows))
        enough = (self.active_days[safe] >= min_active_days) & (span >= min_span_days)
        return known & enough if len(self) else np.zeros(len(rows), bool)

    def weeks_seen(self, row: int, now_us: int) -> int:
        return max(1, int((now_us - self.first_us[row]) // WEEK_US) + 1)

    def days_seen(self, row: int, now_us: int, tz_offset_days: int = 0) -> tuple[int, int]:
        """(weekdays, weekend days) from the identity's first day to `now_us`, inclusive."""
        first = np.datetime64(int(self.first_us[row] // DAY_US), "D")
        last = np.datetime64(int(now_us // DAY_US), "D") + 1
        total = int((last - first).astype(int))
        weekdays = int(np.busday_count(first, last))
        return max(weekdays, 1), max(total - weekdays, 1)

    def usage(self, r: int, how: int, now_us: int) -> tuple[float, str]:
        """How regularly identity row `r` uses hour-of-week `how` (0-1), with the counts
        behind it in words. Smoothed: the hours either side count half, and the same hour on
        the same kind of day (weekday or weekend) counts as much as the same weekday."""
        hw = self.how_weeks[r]
        used_how = hw[how] + 0.5 * (hw[(how - 1) % 168] + hw[(how + 1) % 168])
        weeks = self.weeks_seen(r, now_us)
        weekend = int(how // 24 >= 5)
        hod = how % 24
        dd = self.daytype_days[r, weekend]
        used_day = dd[hod] + 0.5 * (dd[(hod - 1) % 24] + dd[(hod + 1) % 24])
        days = self.days_seen(r, now_us)[weekend]
        value = max(used_how / weeks, used_day / days)
        words = (
            f"it has used this hour in {int(hw[how])} of its last {weeks} weeks, and on "
            f"{int(dd[hod])} of {days} {'weekend days' if weekend else 'weekdays'}"
        )
        return min(1.0, float(value)), words

    def rate_ref(self, r: int, utc_hour: int) -> tuple[int, int]:
        """(busiest same-weekday hour +-1, busiest same hour-of-day +-1 on any day) in the
        rate history: the weekly and the daily seasonal reference."""
        how, _ = self._slots(np.array([utc_hour]))
        h = int(how[0])
        near = [(h - 1) % 168, h, (h + 1) % 168]
        seasonal = int(self.ring[r, near].max())
        hod = np.array([(d * 24 + (h % 24) + k) % 168 for d in range(7) for k in (-1, 0, 1)])
        pooled = int(self.ring[r, hod].max())
        return seasonal, pooled

    # -- growth ----------------------------------------------------------------------------
    def add_identities(self, names: list[str], kinds: list[str]) -> None:
        n = len(names)
        if not n:
            return
        for name, kind in zip(names, kinds, strict=True):
            self.index[name] = len(self.names)
            self.names.append(name)
            self.kind.append(kind)
            self.secrets.append(set())
            self.areas.append(set())
            self.nets.append(set())
        big = np.iinfo(np.int64).max
        self.first_us = np.concatenate([self.first_us, np.full(n, big, np.int64)])
        self.last_us = np.concatenate([self.last_us, np.zeros(n, np.int64)])
        for name in (
            "events",
            "active_days",
            "max_gap_days",
            "denied_max",
            "distinct_max",
            "net_new_days",
            "area_new_days",
        ):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(n, np.int64)]))
        self.last_day = np.concatenate([self.last_day, np.full(n, -1, np.int64)])
        self.how_weeks = np.concatenate([self.how_weeks, np.zeros((n, 168), np.int32)])
        self.how_last = np.concatenate([self.how_last, np.full((n, 168), -1, np.int64)])
        self.daytype_days = np.concatenate([self.daytype_days, np.zeros((n, 2, 24), np.int32)])
        self.daytype_last = np.concatenate([self.daytype_last, np.full((n, 2, 24), -1, np.int64)])
        self.ring = np.concatenate([self.ring, np.zeros((n, 168, self.ring_weeks), np.int32)])

    # -- learning --------------------------------------------------------------------------
    def update(
        self,
        frame: pd.DataFrame,
        span: tuple[int, int] | None = None,
        exclude: np.ndarray | None = None,
    ) -> None:
        """Fold a prepared events frame (see `detectors.events.prepare`) into the baselines.

        `span` is the [start, end) the frame covers in µs, so that silent hours count as
        zero in the rate history; it defaults to the frame's own extent. Events under
        `exclude` (the evidence of alerts) only count as activity (last seen, active days):
        the patterns never learn from them, so an attacker cannot teach the model."""
        if not len(frame):
            if span is not None:
                self._zero_ring(span)
                self.observed_until_us = max(self.observed_until_us, span[1])
            return
        named_mask = (frame["identity"] != "").to_numpy()
        named = frame[named_mask]
        new = pd.unique(named["identity"][~named["identity"].isin(self.index)])
        if len(new):
            kinds = named.drop_duplicates("identity").set_index("identity")["identity_kind"]
            self.add_identities(list(new), [str(kinds[x]) for x in new])
        rows = self.ids(named["identity"].to_numpy())
        if span is None:
            ts = named["ts_us"].to_numpy() if len(named) else frame["ts_us"].to_numpy()
            span = (int(ts.min()) // HOUR_US * HOUR_US, (int(ts.max()) // HOUR_US + 1) * HOUR_US)
        if len(named):
            self._activity(named, rows)
        if exclude is not None and exclude.any():
            keep = ~exclude[named_mask]
            named, rows = named[keep], rows[keep]
        self._time_profile(named, rows)
        self._rate(named, rows, span)
        self._bursts(named, rows)
        self._sets(named, rows)
        self.observed_until_us = max(self.observed_until_us, span[1])
        self.version += 1

    def _activity(self, f: pd.DataFrame, rows: np.ndarray) -> None:
        ts = f["ts_us"].to_numpy()
        np.minimum.at(self.first_us, rows, ts)
        np.maximum.at(self.last_us, rows, ts)
        np.add.at(self.events, rows, 1)
        days = pd.DataFrame({"r": rows, "d": f["day"].to_numpy()}).drop_duplicates()
        days = days.sort_values(["r", "d"])
        r, d = days["r"].to_numpy(), days["d"].to_numpy()
        previous = np.where(np.r_[True, r[1:] != r[:-1]], self.last_day[r], np.r_[0, d[:-1]])
        gaps = np.where(previous >= 0, d - previous, 0)
        fresh = d > self.last_day[r]
        np.maximum.at(self.max_gap_days, r, gaps)
        np.add.at(self.active_days, r[fresh], 1)
        np.maximum.at(self.last_day, r, d)

    def _time_profile(self, f: pd.DataFrame, rows: np.ndarray) -> None:
        if not len(f):
            return
        how, week, day = f["how"].to_numpy(), f["week"].to_numpy(), f["day"].to_numpy()
        keys = pd.DataFrame({"r": rows, "h": how, "w": week}).drop_duplicates()
        r, h, w = keys["r"].to_numpy(), keys["h"].to_numpy(), keys["w"].to_numpy()
        fresh = w > self.how_last[r, h]
        np.add.at(self.how_weeks, (r[fresh], h[fresh]), 1)
        np.maximum.at(self.how_last, (r, h), w)
        daytype = (how // 24 >= 5).astype(np.int64)
        keys = pd.DataFrame({"r": rows, "t": daytype, "h": how % 24, "d": day}).drop_duplicates()
        r, t, h, d = (keys[c].to_numpy() for c in ("r", "t", "h", "d"))
        fresh = d > self.daytype_last[r, t, h]
        np.add.at(self.daytype_days, (r[fresh], t[fresh], h[fresh]), 1)
        np.maximum.at(self.daytype_last, (r, t, h), d)

    def _slots(self, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        monday_based = hours * HOUR_US + 3 * DAY_US
        return (monday_based % WEEK_US) // HOUR_US, (monday_based // WEEK_US) % self.ring_weeks

    def _zero_ring(self, span: tuple[int, int]) -> None:
        first = max(span[0] // HOUR_US, span[1] // HOUR_US - 168 * self.ring_weeks)
        hours = np.arange(first, span[1] // HOUR_US, dtype=np.int64)
        how, slot = self._slots(hours)
        self.ring[:, how, slot] = 0

    def _rate(self, f: pd.DataFrame, rows: np.ndarray, span: tuple[int, int]) -> None:
        self._zero_ring(span)
        hour = f["ts_us"].to_numpy() // HOUR_US  # UTC hours: the ring is internal
        cutoff = span[1] // HOUR_US - 168 * self.ring_weeks
        keep = hour >= cutoff
        counts = pd.DataFrame({"r": rows[keep], "h": hour[keep]}).value_counts()
        if not len(counts):
            return
        r = counts.index.get_level_values(0).to_numpy()
        h = counts.index.get_level_values(1).to_numpy()
        how, slot = self._slots(h)
        self.ring[r, how, slot] = counts.to_numpy()

    def _bursts(self, f: pd.DataFrame, rows: np.ndarray) -> None:
        win = f["win"].to_numpy()
        denied = f["denied"].to_numpy()
        if denied.any():
            c = pd.DataFrame({"r": rows[denied], "w": win[denied]}).value_counts()
            np.maximum.at(self.denied_max, c.index.get_level_values(0).to_numpy(), c.to_numpy())
        access = f["access"].to_numpy()
        if access.any():
            d = pd.DataFrame(
                {"r": rows[access], "w": win[access], "s": f["secret"].to_numpy()[access]}
            ).drop_duplicates()
            c = d[["r", "w"]].value_counts()
            np.maximum.at(self.distinct_max, c.index.get_level_values(0).to_numpy(), c.to_numpy())

    def _sets(self, f: pd.DataFrame, rows: np.ndarray) -> None:
        if not len(f):
            return
        ok = f["access"].to_numpy() & ~f["denied"].to_numpy()
        pairs = pd.DataFrame(
            {
                "r": rows[ok],
                "s": f["secret"].to_numpy()[ok],
                "a": f["area"].to_numpy()[ok],
                "d": f["day"].to_numpy()[ok],
            }
        ).drop_duplicates(["r", "s"])
        area_days: set[tuple[int, int]] = set()
        for r, s, a, d in pairs.itertuples(index=False):
            if s not in self.secrets[r]:
                self.secrets[r].add(s)
                self.accessors.setdefault(s, set()).add(self.names[r])
                if a not in self.areas[r]:
                    if self.areas[r]:
                        area_days.add((r, d))
                    self.areas[r].add(a)
                    self.area_users.setdefault(a, set()).add(self.names[r])
        for r, _ in area_days:
            self.area_new_days[r] += 1
        nets = pd.DataFrame({"r": rows, "n": f["net"].to_numpy(), "d": f["day"].to_numpy()})
        nets = nets[nets["n"] != ""].drop_duplicates(["r", "n"])
        net_days: set[tuple[int, int]] = set()
        for r, n, d in nets.itertuples(index=False):
            if n not in self.nets[r]:
                if self.nets[r]:
                    net_days.add((r, d))
                self.nets[r].add(n)
                self.net_users.setdefault(n, set()).add(self.names[r])
        for r, _ in net_days:
            self.net_new_days[r] += 1

    # -- persistence -----------------------------------------------------------------------
    def to_rows(self, identities: list[str] | None = None) -> list[tuple[str, bytes]]:
        """One JSON document per identity (secret names, never values)."""
        out = []
        for name in identities if identities is not None else self.names:
            r = self.index[name]
            doc = {
                "format": FORMAT,
                "kind": self.kind[r],
                "first_us": self.first_us[r],
                "last_us": self.last_us[r],
                "events": self.events[r],
                "active_days": self.active_days[r],
                "last_day": self.last_day[r],
                "max_gap_days": self.max_gap_days[r],
                "how_weeks": self.how_weeks[r],
                "how_last": self.how_last[r],
                "daytype_days": self.daytype_days[r],
                "daytype_last": self.daytype_last[r],
                "ring": self.ring[r],
                "denied_max": self.denied_max[r],
                "distinct_max": self.distinct_max[r],
                "net_new_days": self.net_new_days[r],
                "area_new_days": self.area_new_days[r],
                "secrets": sorted(self.secrets[r]),
                "areas": sorted(self.areas[r]),
                "nets": sorted(self.nets[r]),
            }
            out.append((name, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)))
        return out

    @classmethod
    def from_rows(cls, rows: list[tuple[str, bytes]], **meta: object) -> Baselines:
        """Rebuild from stored documents (`meta`: tz, window_minutes, ring_weeks, version,
        trained_until_us, observed_until_us)."""
        base = cls(**meta)  # type: ignore[arg-type]
        docs = [(name, orjson.loads(body)) for name, body in rows]
        for name, doc in docs:
            if doc.get("format") != FORMAT:
                raise ValueError(
                    f"baseline of {name!r} has format {doc.get('format')}, expected {FORMAT}; "
                    "run `secretwatch train` again"
                )
        base.add_identities([n for n, _ in docs], [d["kind"] for _, d in docs])
        for name, doc in docs:
            r = base.index[name]
            for key in (
                "first_us",
                "last_us",
                "events",
                "active_days",
                "last_day",
                "max_gap_days",
                "denied_max",
                "distinct_max",
                "net_new_days",
                "area_new_days",
            ):
                getattr(base, key)[r] = doc[key]
            base.how_weeks[r] = doc["how_weeks"]
            base.how_last[r] = doc["how_last"]
            base.daytype_days[r] = doc["daytype_days"]
            base.daytype_last[r] = doc["daytype_last"]
            ring = np.asarray(doc["ring"], np.int32)
            if ring.shape != base.ring[r].shape:
                raise ValueError(
                    f"baseline of {name!r} keeps {ring.shape[1]} weeks of rate history, the "
                    f"config says {base.ring_weeks}; run `secretwatch train` again"
                )
            base.ring[r] = ring
            base.secrets[r] = set(doc["secrets"])
            base.areas[r] = set(doc["areas"])
            base.nets[r] = set(doc["nets"])
            for s in base.secrets[r]:
                base.accessors.setdefault(s, set()).add(name)
            for n in base.nets[r]:
                base.net_users.setdefault(n, set()).add(name)
            for a in base.areas[r]:
                base.area_users.setdefault(a, set()).add(name)
        return base

    def meta(self) -> dict[str, object]:
        return {
            "tz": self.tz,
            "window_minutes": self.window_minutes,
            "ring_weeks": self.ring_weeks,
            "version": self.version,
            "trained_until_us": self.trained_until_us,
            "observed_until_us": self.observed_until_us,
        }


def learn(
    frame: pd.DataFrame, tz: str = "UTC", window_minutes: int = 10, ring_weeks: int = 8
) -> Baselines:
    """Baselines from a prepared training frame (time-ordered)."""
    base = Baselines(tz=tz, window_minutes=window_minutes, ring_weeks=ring_weeks)
    base.ring = np.zeros((0, 168, ring_weeks), np.int32)
    base.update(frame)
    if len(frame):
        base.trained_until_us = base.observed_until_us
    return base
