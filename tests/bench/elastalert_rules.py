"""The baseline secretwatch must beat: ElastAlert 2 rules over the same normalized events.

Each rule is the dict its YAML file loads into, configured the way published ElastAlert
rules for audit logs are (the repository's `examples/rules/ssh.yaml`, the docs' rule-type
examples, the many blog posts copying them): a `frequency` rule on failures keyed by the
actor, a `new_term` rule on who-touches-what, a `spike` rule on request volume. `run_rules`
applies each rule type's semantics as `elastalert/ruletypes.py` implements them, and the
silencing (`realert`, per `query_key` value) that `elastalert.py` applies to matches:

- frequency: a window per key holds events less than `timeframe` apart; when it holds
  `num_events` it matches on the newest and is emptied;
- new_term: terms (here composite: identity + secret) are learned from the
  `terms_window_size` before the rule starts; every unseen term matches once, then is known;
- spike: `cur` counts the key's events in the last `timeframe`, `ref` those in the timeframe
  before; a match needs cur >= threshold_cur, ref >= threshold_ref and cur >= spike_height
  * ref; after a match the key's windows are cleared, so it stays quiet until the key's next
  event is 2 timeframes old (ElastAlert's `clear_windows`).

As in the harness, rules only alert in the detection period (from `train_until`), and learn
only from events before it. Alerts carry secretwatch's alert fields, so both are scored alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pandas as pd

INDEX = "secretwatch-events-*"
RULES: list[dict] = [
    {
        # Failed-auth bursts, as in examples/rules/ssh.yaml, applied to permission denied:
        # 5 in 10 minutes per identity is the usual "brute force" setting; realert 30 minutes
        # so one burst pages once.
        "name": "secrets-denied-burst",
        "type": "frequency",
        "index": INDEX,
        "filter": [{"term": {"outcome": "denied"}}],
        "query_key": "identity",
        "num_events": 5,
        "timeframe": {"minutes": 10},
        "realert": {"minutes": 30},
    },
    {
        # "Alert on a caller or a secret never seen before": `fields: [identity, secret]`,
        # two terms watched separately, learned over the documented default 30 days;
        # realert left at its 1-minute default, per identity.
        "name": "secrets-new-term",
        "type": "new_term",
        "index": INDEX,
        "filter": [{"terms": {"action": ["read", "list"]}}],
        "fields": ["identity", "secret"],
        "terms_window_size": {"days": 30},
        "query_key": "identity",
        "realert": {"minutes": 1},
    },
    {
        # Volume spike per identity: hourly windows, 3x the previous hour (the docs' example
        # height), with floors so quiet identities (a batch job's first run of the day, a
        # person starting work) do not page: at least 10 events in the reference hour and 30
        # in the current one.
        "name": "secrets-read-spike",
        "type": "spike",
        "index": INDEX,
        "filter": [{"terms": {"action": ["read", "list"]}}],
        "query_key": "identity",
        "timeframe": {"hours": 1},
        "spike_height": 3,
        "spike_type": "up",
        "threshold_ref": 10,
        "threshold_cur": 30,
        "realert": {"minutes": 1},
    },
]

# The stricter variant some users write: one composite term, "this identity reads this secret
# for the first time" (`fields: [[identity, secret]]`). Not the baseline: shown beside it,
# since it catches more attacks at many more false alerts.
PAIR_RULES: list[dict] = [
    {**rule, "name": "secrets-new-identity-secret", "fields": [["identity", "secret"]]}
    if rule["type"] == "new_term"
    else rule
    for rule in RULES
]


def _delta_us(spec: dict) -> int:
    """An ElastAlert time spec (`{"minutes": 10}`) in microseconds."""
    return int(timedelta(**spec) / timedelta(microseconds=1))


def _micros(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds since the epoch."""
    return ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)


def iso(ts_us: int) -> str:
    """Microseconds since the epoch as ISO-8601 UTC, as secretwatch writes alert times.

    >>> iso(1_780_000_000_123_456)
    '2026-05-28T20:26:40.123456Z'
    """
    return pd.Timestamp(ts_us, unit="us", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply_filter(frame: pd.DataFrame, filters: list[dict]) -> pd.DataFrame:
    """Rows matching every filter clause (ElastAlert ANDs them). Only the two clauses these
    rules use are understood; anything else is an error rather than a silent match-all.

    >>> f = pd.DataFrame({"outcome": ["denied", "success"], "action": ["read", "auth"]})
    >>> len(apply_filter(f, [{"term": {"outcome": "denied"}}]))
    1
    """
    mask = np.ones(len(frame), dtype=bool)
    for clause in filters:
        ((kind, spec),) = clause.items()
        ((column, value),) = spec.items()
        if kind == "term":
            mask &= (frame[column] == value).to_numpy()
        elif kind == "terms":
            mask &= frame[column].isin(value).to_numpy()
        else:
            raise ValueError(f"filter clause {kind!r} is not supported; use term or terms")
    return frame[mask]


def _groups(frame: pd.DataFrame, key: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(key value, times us, event ids) per key, each in time order."""
    for value, group in frame.groupby(key, sort=True):
        group = group.sort_values(["ts", "event_id"], kind="stable")
        yield str(value), _micros(group["ts"]), group["event_id"].to_numpy()


def _alert(
    rule: dict, identity: str, ts: int, evidence: list[str], score: float, explanation: str
) -> dict:
    return {
        "id": f"{rule['name']}:{identity}:{ts}",
        "detector": rule["name"],
        "identity": identity,
        "severity": "medium",
        "score": float(score),
        "timestamp": iso(ts),
        "explanation": explanation,
        "evidence": evidence,
    }


class _Silence:
    """ElastAlert's realert: after an alert, matches for the same key are dropped."""

    def __init__(self, rule: dict) -> None:
        self.span = _delta_us(rule.get("realert", {"minutes": 1}))
        self.until: dict[str, int] = {}

    def allows(self, key: str, ts: int) -> bool:
        if ts < self.until.get(key, -1):
            return False
        self.until[key] = ts + self.span
        return True


def frequency(rule: dict, frame: pd.DataFrame, start: int) -> list[dict]:
    """`num_events` within `timeframe` per key; the window empties on each match."""
    need, span = rule["num_events"], _delta_us(rule["timeframe"])
    silence, out = _Silence(rule), []
    for key, times, ids in _groups(apply_filter(frame, rule["filter"]), rule["query_key"]):
        first = 0
        for i, ts in enumerate(times.tolist()):
            while ts - times[first] >= span:
                first += 1
            if i - first + 1 >= need:
                evidence = [str(e) for e in ids[first : i + 1]]
                first = i + 1
                if ts >= start and silence.allows(key, ts):
                    out.append(
                        _alert(
                            rule,
                            key,
                            ts,
                            evidence,
                            len(evidence),
                            f"At least {need} events occurred within {rule['timeframe']} for {key}",
                        )
                    )
    return out


def new_term(rule: dict, frame: pd.DataFrame, start: int) -> list[dict]:
    """Composite terms unseen in the `terms_window_size` before `start` match once each."""
    fields = [f if isinstance(f, list) else [f] for f in rule["fields"]]
    window = _delta_us(rule.get("terms_window_size", {"days": 30}))
    events = apply_filter(frame, rule["filter"])
    times = _micros(events["ts"])
    silence, out = _Silence(rule), []
    matches = []
    for field in fields:
        known = events[field].notna().all(axis=1) & (events[field] != "").all(axis=1)
        learn = events[known & (times >= start - window) & (times < start)]
        seen = set(learn[field].itertuples(index=False, name=None))
        later = events[known & (times >= start)].sort_values(["ts", "event_id"], kind="stable")
        later = later.drop_duplicates(field, keep="first")
        for row in later.itertuples(index=False):
            term = tuple(getattr(row, f) for f in field)
            if term not in seen:
                matches.append((row, field, term))
    matches.sort(key=lambda m: (m[0].ts, m[0].event_id))
    for row, field, term in matches:
        key = str(getattr(row, rule.get("query_key", "identity")))
        ts = int(pd.Timestamp(row.ts).value // 1000)
        if silence.allows(key, ts):
            out.append(
                _alert(
                    rule,
                    key,
                    ts,
                    [str(row.event_id)],
                    1.0,
                    f"New term {dict(zip(field, term, strict=True))}",
                )
            )
    return out


def spike(rule: dict, frame: pd.DataFrame, start: int) -> list[dict]:
    """Current `timeframe` against the one before it, per key, spiking upwards."""
    span, height = _delta_us(rule["timeframe"]), rule["spike_height"]
    floor_cur, floor_ref = rule.get("threshold_cur", 0), rule.get("threshold_ref", 0)
    silence, out = _Silence(rule), []
    for key, times, ids in _groups(apply_filter(frame, rule["filter"]), rule["query_key"]):
        idx = np.arange(times.size)
        cur_first = np.searchsorted(times, times - span, side="right")
        ref_first = np.searchsorted(times, times - 2 * span, side="right")
        cur, ref = idx - cur_first + 1, cur_first - ref_first
        hit = (cur >= floor_cur) & (ref >= floor_ref) & (cur >= height * ref)
        quiet_until = int(times[0]) + 2 * span  # windows fill before the first check
        for i in np.flatnonzero(hit).tolist():
            ts = int(times[i])
            if ts < quiet_until:
                continue
            nxt = int(times[i + 1]) if i + 1 < times.size else ts
            quiet_until = nxt + 2 * span
            if ts >= start and silence.allows(key, ts):
                evidence = [str(e) for e in ids[cur_first[i] : i + 1]]
                out.append(
                    _alert(
                        rule,
                        key,
                        ts,
                        evidence,
                        cur[i] / max(ref[i], 1),
                        f"An abnormal number ({cur[i]}) of events occurred; "
                        f"preceding that time there were only {ref[i]} within "
                        f"{rule['timeframe']}",
                    )
                )
    return out


RULE_TYPES = {"frequency": frequency, "new_term": new_term, "spike": spike}


def run_rules(frame: pd.DataFrame, train_until: str, rules: list[dict] | None = None) -> list[dict]:
    """Every rule's alerts from `train_until` on, in time order."""
    start = int(pd.Timestamp(train_until).value // 1000)
    alerts: list[dict] = []
    for rule in RULES if rules is None else rules:
        kind = rule["type"]
        if kind not in RULE_TYPES:
            raise ValueError(
                f"rule {rule['name']!r}: type {kind!r} is not one of {sorted(RULE_TYPES)}"
            )
        alerts += RULE_TYPES[kind](rule, frame, start)
    return sorted(alerts, key=lambda a: (a["timestamp"], a["id"]))
