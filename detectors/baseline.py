"""Per-identity baselines: what normal access looks like for each service or person.

Learned from a training window and updated online, batch by batch, from the same code path
(`learn` is `update` on an empty baseline, a day at a time), so the two never drift apart.
State is kept as arrays indexed by identity (struct of arrays) so a batch updates every
identity in a few vectorized numpy steps; `to_rows`/`from_rows` turn it into one JSON
document per identity for the store, which is what lets a restarted process, or a Kafka
member that takes over some identities, continue where the last one stopped.

What is kept per identity:
- time: in how many weeks each hour of the week was used, and in how many weekdays and
  weekend days each hour of the day was used (smoothed over neighbouring hours and pooled
  across days when judged, so two weeks of history do not make every new hour look
  strange), and on how many days it was active at an hour it rarely used (people on call
  do that; services do not);
- rate: requests per hour for each hour of the week over the last N weeks (a ring buffer),
  which carries the daily and weekly seasonality;
- what and where: the secrets it touched, how often it read each folder ("area"), the
  networks it came from, and how often it picked up new folders and networks;
- control: the kinds of control-plane change it has made (`policy-write`, `rbac-bind`,
  `DeleteSecret`), so a first one is told from routine administration;
- bursts: its worst window (and hour) of denied requests and of distinct secrets touched;
- activity: first and last seen, active days, longest silence;
- the last day: requests and denied requests in each of its last 24 hours, evidence of
  alerts included (a deviation held for hours is judged on all of it), and its denied
  requests in all (the norm of denials per hour).

Over 400 lines on purpose: `Baselines` is one struct of arrays, and every field it holds
is grown, updated, serialized and restored in the same class, so adding a field touches
one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

from detectors.events import DAY_US, HOUR_US, WEEK_US, Events

FORMAT = 5  # the layout of one identity's stored document; bump when it changes
# An hour used in fewer than this share of an identity's weeks is a rare hour for it.
RARE_USAGE = 0.05
_BIG = np.iinfo(np.int64).max
_INT_FIELDS = (
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
    "odd_days",
    "odd_last",
    "client_new_days",
    "denied_max_hour",
    "distinct_max_hour",
    "denied_events",
)


def _ints(n: int = 0, fill: int = 0) -> np.ndarray:
    return np.full(n, fill, np.int64)


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
    first_us: np.ndarray = field(default_factory=_ints)
    last_us: np.ndarray = field(default_factory=_ints)
    events: np.ndarray = field(default_factory=_ints)
    active_days: np.ndarray = field(default_factory=_ints)
    last_day: np.ndarray = field(default_factory=_ints)
    max_gap_days: np.ndarray = field(default_factory=_ints)
    denied_max: np.ndarray = field(default_factory=_ints)
    distinct_max: np.ndarray = field(default_factory=_ints)
    denied_max_hour: np.ndarray = field(default_factory=_ints)  # the same per hour, for slow
    distinct_max_hour: np.ndarray = field(default_factory=_ints)  # probing and enumeration
    net_new_days: np.ndarray = field(default_factory=_ints)
    area_new_days: np.ndarray = field(default_factory=_ints)
    odd_days: np.ndarray = field(default_factory=_ints)  # days active at a rare hour
    odd_last: np.ndarray = field(default_factory=_ints)
    client_new_days: np.ndarray = field(default_factory=_ints)
    denied_events: np.ndarray = field(default_factory=_ints)  # denied requests learned
    # The last 24 UTC hours: [row, hour % 24] holds (requests, denied) of hour recent_hour.
    recent: np.ndarray = field(default_factory=lambda: np.zeros((0, 24, 2), np.int32))
    recent_hour: np.ndarray = field(default_factory=lambda: np.zeros((0, 24), np.int64))
    how_weeks: np.ndarray = field(default_factory=lambda: np.zeros((0, 168), np.int32))
    how_last: np.ndarray = field(default_factory=lambda: np.zeros((0, 168), np.int64))
    daytype_days: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 24), np.int32))
    daytype_last: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 24), np.int64))
    ring: np.ndarray = field(default_factory=lambda: np.zeros((0, 168, 8), np.int32))
    secrets: list[set[str]] = field(default_factory=list)
    areas: list[dict[str, int]] = field(default_factory=list)  # folder -> reads
    nets: list[set[str]] = field(default_factory=list)
    clients: list[set[str]] = field(default_factory=list)  # user-agent families
    controls: list[set[str]] = field(default_factory=list)  # control-plane operations made
    # Derived on load and kept current: who reads each secret and folder, who uses a network
    # or a client.
    accessors: dict[str, set[str]] = field(default_factory=dict)
    area_users: dict[str, set[str]] = field(default_factory=dict)
    net_users: dict[str, set[str]] = field(default_factory=dict)
    client_users: dict[str, set[str]] = field(default_factory=dict)
    # The multivariate model, fitted at training time (see detectors.multivariate).
    model: object | None = None

    def __len__(self) -> int:
        return len(self.names)

    def ids(self, identities: np.ndarray) -> np.ndarray:
        """Identity names -> row numbers (-1 for identities without a baseline)."""
        if not len(identities):
            return _ints()
        codes, uniques = _factorize(identities)
        get = self.index.get
        rows: np.ndarray = np.array([get(x, -1) for x in uniques], np.int64)[codes]
        return rows

    def warm(
        self, rows: np.ndarray, now_us: int, min_active_days: int, min_span_days: int
    ) -> np.ndarray:
        """Which identities have enough history to be judged against it (cold start)."""
        rows = np.asarray(rows)
        if not len(self):
            return np.zeros(len(rows), bool)
        safe = np.where(rows >= 0, rows, 0)
        span = (now_us - self.first_us[safe]) / DAY_US
        enough = (self.active_days[safe] >= min_active_days) & (span >= min_span_days)
        return (rows >= 0) & enough

    def weeks_seen(self, r: int, now_us: int) -> int:
        return max(1, int((now_us - self.first_us[r]) // WEEK_US) + 1)

    def days_seen(self, r: int, now_us: int) -> tuple[int, int]:
        """(weekdays, weekend days) from the identity's first day to `now_us`, inclusive."""
        first = np.datetime64(int(self.first_us[r] // DAY_US), "D")
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

    def usages(self, r: np.ndarray, how: np.ndarray, now_us: int) -> np.ndarray:
        """`usage`'s value for many (row, hour of week) pairs at once, without the words."""
        hw = self.how_weeks
        used_how = hw[r, how] + 0.5 * (hw[r, (how - 1) % 168] + hw[r, (how + 1) % 168])
        weeks = np.maximum(1, (now_us - self.first_us[r]) // WEEK_US + 1)
        weekend = (how // 24 >= 5).astype(np.int64)
        hod = how % 24
        dd = self.daytype_days
        used_day = dd[r, weekend, hod] + 0.5 * (
            dd[r, weekend, (hod - 1) % 24] + dd[r, weekend, (hod + 1) % 24]
        )
        first = (self.first_us[r] // DAY_US).astype("datetime64[D]")
        last = np.datetime64(int(now_us // DAY_US), "D") + 1
        total = (last - first).astype(np.int64)
        weekdays = np.busday_count(first, last)
        days = np.where(weekend == 1, np.maximum(total - weekdays, 1), np.maximum(weekdays, 1))
        value: np.ndarray = np.minimum(1.0, np.maximum(used_how / weeks, used_day / days))
        return value

    def irregularity(self, r: int) -> float:
        """Share of its active days on which the identity used a rare hour (0-1)."""
        return float(self.odd_days[r]) / max(int(self.active_days[r]), 1)

    def home(self, identity: str) -> str:
        """The folder an identity reads most: where it belongs."""
        r = self.index.get(identity)
        if r is None or not self.areas[r]:
            return ""
        counts = self.areas[r]
        return max(counts, key=lambda a: (counts[a], a))

    def rate_ref(self, r: int, utc_hour: int) -> tuple[int, int]:
        """(busiest same-weekday hour +-1, busiest same hour-of-day +-1 on any day) in the
        rate history: the weekly and the daily seasonal reference."""
        h = int(_slots(np.array([utc_hour]), self.ring_weeks)[0][0])
        near = [(h - 1) % 168, h, (h + 1) % 168]
        seasonal = int(self.ring[r, near].max())
        pooled = int(self.ring[r, _SAME_HOUR[h % 24]].max())
        return seasonal, pooled

    def rate_refs(self, r: np.ndarray, utc_hour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`rate_ref` for many (row, UTC hour) pairs at once."""
        h = _slots(utc_hour, self.ring_weeks)[0]
        near = np.column_stack(((h - 1) % 168, h, (h + 1) % 168))
        seasonal = self.ring[r[:, None], near].max(axis=(1, 2))
        pooled = self.ring[r[:, None], _SAME_HOUR[h % 24]].max(axis=(1, 2))
        return seasonal.astype(np.int64), pooled.astype(np.int64)

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
            self.areas.append({})
            self.nets.append(set())
            self.clients.append(set())
            self.controls.append(set())
        for name in _INT_FIELDS:
            fill = {"first_us": _BIG, "last_day": -1, "odd_last": -1}.get(name, 0)
            setattr(self, name, np.concatenate([getattr(self, name), _ints(n, fill)]))
        self.how_weeks = np.concatenate([self.how_weeks, np.zeros((n, 168), np.int32)])
        self.how_last = np.concatenate([self.how_last, np.full((n, 168), -1, np.int64)])
        self.daytype_days = np.concatenate([self.daytype_days, np.zeros((n, 2, 24), np.int32)])
        self.daytype_last = np.concatenate([self.daytype_last, np.full((n, 2, 24), -1, np.int64)])
        self.ring = np.concatenate([self.ring, np.zeros((n, 168, self.ring_weeks), np.int32)])
        self.recent = np.concatenate([self.recent, np.zeros((n, 24, 2), np.int32)])
        self.recent_hour = np.concatenate([self.recent_hour, np.full((n, 24), -1, np.int64)])

    # -- learning --------------------------------------------------------------------------
    def update(
        self,
        ev: Events,
        span: tuple[int, int] | None = None,
        exclude: np.ndarray | None = None,
    ) -> None:
        """Fold prepared events (see `detectors.events.prepare`) into the baselines.

        `span` is the [start, end) the events cover in µs, so that silent hours count as
        zero in the rate history; it defaults to the events' own extent. Events under
        `exclude` (the evidence of alerts) only count as activity (last seen, active days):
        the patterns never learn from them, so an attacker cannot teach the model."""
        if span is None:
            if not len(ev):
                return
            span = (
                int(ev.ts_us[0]) // HOUR_US * HOUR_US,
                (int(ev.ts_us[-1]) // HOUR_US + 1) * HOUR_US,
            )
        named = ev.identity != ""
        if not named.all():
            ev = ev.take(named)
            exclude = exclude[named] if exclude is not None else None
        if len(ev):
            codes, uniques = _factorize(ev.identity)
            new = [i for i, name in enumerate(uniques) if name not in self.index]
            if new:
                first = np.unique(codes, return_index=True)[1]
                self.add_identities(
                    [uniques[i] for i in new], [ev.identity_kind[first[i]] for i in new]
                )
            rows = np.array([self.index[x] for x in uniques], np.int64)[codes]
            self._activity(ev, rows)
            if exclude is not None and exclude.any():
                keep = ~exclude
                ev, rows = ev.take(keep), rows[keep]
        else:
            rows = _ints()
        self._zero_ring(span)
        if len(ev):
            self._time_profile(ev, rows, span[0])
            self._rate(ev, rows, span)
            self._bursts(ev, rows)
            self._sets(ev, rows)
        self.observed_until_us = max(self.observed_until_us, span[1])
        self.version += 1

    def _activity(self, ev: Events, rows: np.ndarray) -> None:
        np.minimum.at(self.first_us, rows, ev.ts_us)
        np.maximum.at(self.last_us, rows, ev.ts_us)
        np.add.at(self.events, rows, 1)
        key = np.unique((rows << 24) | ev.day)
        r, d = key >> 24, key & 0xFFFFFF
        first_of_row = np.r_[True, r[1:] != r[:-1]]
        previous = np.where(first_of_row, self.last_day[r], np.r_[0, d[:-1]])
        gaps = np.where(previous >= 0, d - previous, 0)
        fresh = d > self.last_day[r]
        np.maximum.at(self.max_gap_days, r, gaps)
        np.add.at(self.active_days, r[fresh], 1)
        np.maximum.at(self.last_day, r, d)
        self._recent(ev, rows)

    def _recent(self, ev: Events, rows: np.ndarray) -> None:
        """Count requests and denials per identity-hour in the last-24-hours ring; a slot
        holding an older hour starts again, one holding a newer one ignores late events."""
        key, inverse = np.unique((rows << 32) | ev.uhour, return_inverse=True)
        total = np.bincount(inverse, minlength=len(key))
        denied = np.bincount(inverse, weights=ev.denied, minlength=len(key)).astype(np.int64)
        r, h = key >> 32, key & 0xFFFFFFFF
        latest = np.zeros(len(self), np.int64)
        np.maximum.at(latest, r, h)
        s = h % 24
        keep = (h > latest[r] - 24) & (h >= self.recent_hour[r, s])
        r, h, s, total, denied = r[keep], h[keep], s[keep], total[keep], denied[keep]
        stale = self.recent_hour[r, s] != h
        self.recent[r[stale], s[stale]] = 0
        self.recent_hour[r, s] = h
        self.recent[r, s, 0] += total.astype(np.int32)
        self.recent[r, s, 1] += denied.astype(np.int32)

    def _time_profile(self, ev: Events, rows: np.ndarray, now_us: int) -> None:
        key = np.unique((rows << 40) | (ev.week << 8) | ev.how)
        r, w, h = key >> 40, (key >> 8) & 0xFFFFFFFF, key & 0xFF
        self._count_odd_days(r, h, ev, rows, now_us)
        fresh = w > self.how_last[r, h]
        np.add.at(self.how_weeks, (r[fresh], h[fresh]), 1)
        np.maximum.at(self.how_last, (r, h), w)
        weekend = (ev.how // 24 >= 5).astype(np.int64)
        key = np.unique((rows << 40) | (ev.day << 6) | (weekend << 5) | (ev.how % 24))
        r, d = key >> 40, (key >> 6) & 0x3FFFFFFFF
        t, h = (key >> 5) & 1, key & 0x1F
        fresh = d > self.daytype_last[r, t, h]
        np.add.at(self.daytype_days, (r[fresh], t[fresh], h[fresh]), 1)
        np.maximum.at(self.daytype_last, (r, t, h), d)

    def _count_odd_days(
        self, r: np.ndarray, h: np.ndarray, ev: Events, rows: np.ndarray, now_us: int
    ) -> None:
        """Count the days an identity, already four weeks old, used an hour-of-week it had
        used in under RARE_USAGE of its weeks (judged before this batch is learned)."""
        hw = self.how_weeks
        used = hw[r, h] + 0.5 * (hw[r, (h - 1) % 168] + hw[r, (h + 1) % 168])
        weeks = (now_us - self.first_us[r]) // WEEK_US + 1
        rare = (weeks >= 4) & (used < RARE_USAGE * np.maximum(weeks, 1))
        if not rare.any():
            return
        odd_rows = np.unique(r[rare])
        last_day = np.zeros(len(self), np.int64)
        np.maximum.at(last_day, rows, ev.day)
        fresh = last_day[odd_rows] > self.odd_last[odd_rows]
        self.odd_days[odd_rows[fresh]] += 1
        self.odd_last[odd_rows] = np.maximum(self.odd_last[odd_rows], last_day[odd_rows])

    def _zero_ring(self, span: tuple[int, int]) -> None:
        """Clear the ring slots of hours entered for the first time (their slot still holds
        the count of `ring_weeks` ago); hours already observed keep what they have, so a
        batch shorter than an hour, or a late event, adds to its hour."""
        first = max(
            span[0] // HOUR_US,
            -(-self.observed_until_us // HOUR_US),
            span[1] // HOUR_US - 168 * self.ring_weeks,
        )
        hours = np.arange(first, span[1] // HOUR_US, dtype=np.int64)
        how, slot = _slots(hours, self.ring_weeks)
        self.ring[:, how, slot] = 0

    def _rate(self, ev: Events, rows: np.ndarray, span: tuple[int, int]) -> None:
        cutoff = span[1] // HOUR_US - 168 * self.ring_weeks
        keep = ev.uhour >= cutoff  # UTC hours: the ring is internal
        key, counts = np.unique((rows[keep] << 32) | ev.uhour[keep], return_counts=True)
        how, slot = _slots(key & 0xFFFFFFFF, self.ring_weeks)
        np.add.at(self.ring, (key >> 32, how, slot), counts.astype(np.int32))
        np.add.at(self.denied_events, rows[ev.denied], 1)

    def _bursts(self, ev: Events, rows: np.ndarray) -> None:
        for window, denied_max, distinct_max in (
            (ev.win, self.denied_max, self.distinct_max),
            (ev.uhour, self.denied_max_hour, self.distinct_max_hour),
        ):
            if ev.denied.any():
                d = ev.denied
                key, counts = np.unique((rows[d] << 32) | window[d], return_counts=True)
                np.maximum.at(denied_max, key >> 32, counts)
            if ev.access.any():
                a = ev.access
                key, counts = np.unique(
                    distinct_pairs((rows[a] << 32) | window[a], ev.scode[a]), return_counts=True
                )
                np.maximum.at(distinct_max, key >> 32, counts)

    def _sets(self, ev: Events, rows: np.ndarray) -> None:
        ok = np.flatnonzero(ev.access & ~ev.denied)
        if len(ok):
            pair = (rows[ok] << 32) | ev.scode[ok]
            _, first, reads = np.unique(pair, return_index=True, return_counts=True)
            area_days: set[tuple[int, int]] = set()
            for i, n in zip(ok[first], reads, strict=True):
                r, s, a = int(rows[i]), ev.secret[i], ev.area[i]
                counts = self.areas[r]
                if a not in counts:
                    if counts:
                        area_days.add((r, int(ev.day[i])))
                    counts[a] = 0
                    self.area_users.setdefault(a, set()).add(self.names[r])
                counts[a] += int(n)
                if s not in self.secrets[r]:
                    self.secrets[r].add(s)
                    self.accessors.setdefault(s, set()).add(self.names[r])
            for r, _ in area_days:
                self.area_new_days[r] += 1
        self._learn_new(ev, rows, ev.net, ev.ncode, self.nets, self.net_users, self.net_new_days)
        self._learn_new(
            ev, rows, ev.client, ev.ccode, self.clients, self.client_users, self.client_new_days
        )
        done = np.flatnonzero((ev.control > 0) & (ev.outcome == "success"))
        for r, operation in {(int(rows[i]), ev.operation[i]) for i in done}:
            self.controls[r].add(operation)

    def _learn_new(
        self,
        ev: Events,
        rows: np.ndarray,
        values: np.ndarray,
        codes: np.ndarray,
        known: list[set[str]],
        users: dict[str, set[str]],
        new_days: np.ndarray,
    ) -> None:
        """Add unseen values (networks, clients) to each identity's set, and count the days
        on which it showed one it had not shown before (its churn)."""
        present = np.flatnonzero(values != "")
        if not len(present):
            return
        _, first = np.unique((rows[present] << 32) | codes[present], return_index=True)
        days: set[tuple[int, int]] = set()
        for i in present[first]:
            r, value = int(rows[i]), values[i]
            if value not in known[r]:
                if known[r]:
                    days.add((r, int(ev.day[i])))
                known[r].add(value)
                users.setdefault(value, set()).add(self.names[r])
        for r, _ in days:
            new_days[r] += 1

    # -- persistence -----------------------------------------------------------------------
    def to_rows(self, identities: list[str] | None = None) -> list[tuple[str, bytes]]:
        """One JSON document per identity (secret names, never values)."""
        out = []
        for name in identities if identities is not None else self.names:
            r = self.index[name]
            doc: dict[str, object] = {"format": FORMAT, "kind": self.kind[r]}
            doc.update({key: getattr(self, key)[r] for key in _INT_FIELDS})
            doc.update(
                how_weeks=self.how_weeks[r],
                how_last=self.how_last[r],
                daytype_days=self.daytype_days[r],
                daytype_last=self.daytype_last[r],
                ring=self.ring[r],
                recent=self.recent[r],
                recent_hour=self.recent_hour[r],
                secrets=sorted(self.secrets[r]),
                areas=dict(sorted(self.areas[r].items())),
                nets=sorted(self.nets[r]),
                clients=sorted(self.clients[r]),
                controls=sorted(self.controls[r]),
            )
            out.append((name, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)))
        return out

    @classmethod
    def from_rows(cls, rows: list[tuple[str, bytes]], **meta: object) -> Baselines:
        """Rebuild from stored documents (`meta`: tz, window_minutes, ring_weeks, version,
        trained_until_us, observed_until_us)."""
        base = cls(**meta)  # type: ignore[arg-type]
        base.ring = np.zeros((0, 168, base.ring_weeks), np.int32)
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
            for key in _INT_FIELDS:
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
            base.recent[r] = doc["recent"]
            base.recent_hour[r] = doc["recent_hour"]
            base.secrets[r] = set(doc["secrets"])
            base.areas[r] = dict(doc["areas"])
            base.nets[r] = set(doc["nets"])
            base.clients[r] = set(doc["clients"])
            base.controls[r] = set(doc["controls"])
            for s in base.secrets[r]:
                base.accessors.setdefault(s, set()).add(name)
            for a in base.areas[r]:
                base.area_users.setdefault(a, set()).add(name)
            for n in base.nets[r]:
                base.net_users.setdefault(n, set()).add(name)
            for c in base.clients[r]:
                base.client_users.setdefault(c, set()).add(name)
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


# For each hour of the day, the hours of the week at that hour +-1 on every day.
_SAME_HOUR = np.array(
    [[(d * 24 + h + k) % 168 for d in range(7) for k in (-1, 0, 1)] for h in range(24)]
)


def _slots(hours: np.ndarray, ring_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Ring coordinates (hour of week, week slot) of absolute UTC hours."""
    monday_based = hours * HOUR_US + 3 * DAY_US
    return (monday_based % WEEK_US) // HOUR_US, (monday_based // WEEK_US) % ring_weeks


def distinct_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The `a` of each distinct (a, b) pair: count them per `a` for "distinct b per a"."""
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    new = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[new]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    codes, uniques = pd.factorize(values)
    return codes, list(uniques)


def learn(
    ev: Events,
    tz: str = "UTC",
    window_minutes: int = 10,
    ring_weeks: int = 8,
    until_us: int | None = None,
) -> Baselines:
    """Baselines from prepared training events (time-ordered), learned a day at a time as
    the stream would teach them, up to `until_us` (default: the end of the last event's
    hour)."""
    base = Baselines(tz=tz, window_minutes=window_minutes, ring_weeks=ring_weeks)
    base.ring = np.zeros((0, 168, ring_weeks), np.int32)
    if not len(ev):
        return base
    end = until_us or (int(ev.ts_us[-1]) // HOUR_US + 1) * HOUR_US
    start = int(ev.ts_us[0]) // DAY_US * DAY_US
    bounds = np.arange(start, end, DAY_US).tolist() + [end]
    cuts = np.searchsorted(ev.ts_us, bounds)
    for i in range(len(bounds) - 1):
        base.update(ev.slice(int(cuts[i]), int(cuts[i + 1])), (bounds[i], bounds[i + 1]))
    base.trained_until_us = end
    base.version = 1
    return base
