"""The access-review tables, computed from the store's aggregates (never from events one
by one), so a quarter of tens of millions of events costs a few grouped queries.

`read_store` asks the store (through the `ReportSource` role protocol of
`pipeline.store.base` only, so either store serves); `build` turns those frames plus the
owners, inventory and policies into the tables the report shows and writes (its headline
numbers and notes come from `headline`). Everything is sorted and floored to whole
seconds, so the same inputs always give the same bytes, whichever store they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from pipeline.reports import coverage, grants, headline
from pipeline.reports.controls import CONTROLS
from pipeline.reports.inventory import Evidence
from pipeline.reports.period import Period
from pipeline.reports.policies import Rule
from pipeline.reports.rotation import is_dynamic, is_new_value, rotated_secret
from pipeline.reports.settings import ReportConfig
from pipeline.store.base import ReportSource

SECRET = ["source", "backend", "secret"]
_ALERT_COLUMNS = [
    "id", "ts", "identity", "severity", "detectors", "score", "window_start", "window_end",
    "explanation", "evidence_count",
]  # fmt: skip


@dataclass(frozen=True)
class StoreInputs:
    """What the report read from the store, normalized: the report is a pure function of
    these (plus owners, inventory and policies), and the manifest hashes them."""

    summary: pd.DataFrame  # access_summary(period)
    hourly: pd.DataFrame  # hourly_activity(period)
    days: pd.DataFrame  # source_coverage(period)
    history: pd.DataFrame  # secret_history(until)
    alerts: pd.DataFrame  # alerts(period)
    events_total: int
    schema_version: int


@dataclass
class Review:
    period: Period
    tables: dict[str, pd.DataFrame]
    summary: dict[str, object]
    notes: list[str] = field(default_factory=list)


def read_store(
    store: ReportSource, period: Period, step: Callable[[str], None] = print
) -> StoreInputs:
    """The four aggregations and the period's alerts, normalized."""
    since, until = period.since, period.until
    step("access summary")
    summary = _norm(store.access_summary(since, until), ["first_ts", "last_ts"])
    step("hourly activity")
    hourly = _norm(store.hourly_activity(since, until), ["hour"])
    step("source coverage")
    days = _norm(store.source_coverage(since, until), ["day", "first_ts", "last_ts"])
    step("secret history")
    history = _norm(store.secret_history(until), ["first_ts", "last_ts"])
    step("alerts")
    alerts = _alerts(store.alerts(since=since, until=until))
    return StoreInputs(
        summary=_sorted(summary), hourly=_sorted(hourly), days=_sorted(days),
        history=_sorted(history), alerts=alerts, events_total=store.count(),
        schema_version=store.schema_version(),
    )  # fmt: skip


def _norm(frame: pd.DataFrame, stamps: list[str]) -> pd.DataFrame:
    """Store-independent form: UTC stamps floored to seconds, text columns as Python
    strings with "" for missing, counts as int64."""
    frame = frame.copy()
    for name in frame.columns:
        if name in stamps:
            frame[name] = (
                pd.to_datetime(frame[name], utc=True).dt.floor("s").astype("datetime64[s, UTC]")
            )
        elif name in ("events", "denied"):
            frame[name] = frame[name].astype("int64")
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), "").astype(str)
    return frame


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), ignore_index=True)


def _alerts(frame: pd.DataFrame) -> pd.DataFrame:
    """The period's alerts with their resolution (`open` where none is recorded); alerts
    folded into another one (repeats) are counted there, not listed again."""
    if "folded_into" in frame.columns:
        frame = frame[frame["folded_into"].isna()]
    present = [c for c in _ALERT_COLUMNS if c in frame.columns]
    out = _norm(frame[present], ["ts", "window_start", "window_end"])
    if "resolution" in frame.columns:
        resolution = frame["resolution"].astype(object).where(frame["resolution"].notna(), None)
        out["resolution"] = resolution.fillna("open").astype(str).values
    else:
        out["resolution"] = "open"
    if "score" in out:
        out["score"] = frame["score"].astype(float).round(3).values
    out["evidence_count"] = frame["evidence_count"].astype("int64").values
    return out.sort_values(["ts", "id"], ignore_index=True)


# -- building the tables ------------------------------------------------------------------


def build(
    inputs: StoreInputs,
    period: Period,
    cfg: ReportConfig,
    evidence: Evidence,
    policies: Mapping[str, list[Rule]],
) -> Review:
    summary = _rotations_named(_no_control(inputs.summary))
    history = _rotations_named(_no_control(inputs.history))
    known = known_secrets(history, evidence, cfg, period)
    reads = _pair_reads(summary)
    secrets = secret_table(known, summary)
    tables: dict[str, pd.DataFrame] = {"secrets": secrets}
    tables["secret_accessors"] = accessor_table(summary)
    tables["identities"] = identity_table(summary, inputs.hourly, inputs.alerts)
    tables["unused_secrets"] = unused_table(known, period, cfg.unused_days)
    tables["stale_rotations"] = stale_table(known, period, cfg.rotation_days)
    granted = grants.with_use(
        grants.resolve(known[SECRET], evidence, policies, cfg.kv2_mounts), reads
    )
    tables["grants"] = granted
    per_identity = grants.summarize(granted, reads, cfg.overbroad_factor, cfg.overbroad_min_unused)
    tables["grant_summary"] = per_identity
    flagged = per_identity["overbroad"].astype(bool)
    tables["overbroad_identities"] = per_identity.loc[flagged].reset_index(drop=True)
    tables["unused_grants"] = granted[~granted["used"]].reset_index(drop=True)
    tables["ownership_gaps"] = (
        known.loc[known["owner"] == "", [*SECRET, "listed"]]
        .merge(secrets[[*SECRET, "reads", "accessors"]], on=SECRET, how="left")
        .reset_index(drop=True)
    )
    tables["denied_attempts"] = denied_table(summary)
    tables["alerts"] = inputs.alerts
    gap_rows = coverage.gaps(
        inputs.days, period.since, period.until, cfg.gap_hours, _sources(history)
    )
    tables["coverage"] = coverage.summarize(inputs.days, gap_rows)
    tables["coverage_gaps"] = gap_rows
    tables["controls"] = pd.DataFrame(CONTROLS)
    notes = headline.notes(history, period, cfg, evidence, policies, tables)
    return Review(period, tables, headline.headline(inputs, tables), notes)


def _no_control(frame: pd.DataFrame) -> pd.DataFrame:
    """Control-plane changes (action `control`: a policy written, a trail stopped) name what
    they changed, not a secret read: the review counts them as it did before they had an
    action of their own, as `other` on no secret."""
    mask = frame["action"] == "control"
    if not mask.any():
        return frame
    frame = frame.copy()
    frame.loc[mask, "action"] = "other"
    frame.loc[mask, "secret"] = ""
    return frame


def _rotations_named(frame: pd.DataFrame) -> pd.DataFrame:
    """Rotate endpoints renamed to the secret they rotate (see `rotation.rotated_secret`)."""
    mask = (frame["action"] == "rotate") & (frame["source"] == "vault")
    if not mask.any():
        return frame
    frame = frame.copy()
    frame.loc[mask, "secret"] = [rotated_secret("vault", s) for s in frame.loc[mask, "secret"]]
    return frame


def _ok(frame: pd.DataFrame) -> pd.Series:
    return (frame["outcome"] == "success") & (frame["secret"] != "")


def _named(secrets: pd.Series) -> pd.Series:
    """Paths naming one secret: not folders (`secret/apps/`) nor patterns (`secret:*`)."""
    return ~secrets.str.endswith("/") & ~secrets.str.contains("*", regex=False)


def _new_value(frame: pd.DataFrame) -> pd.Series:
    flags = [
        is_new_value(s, a, o)
        for s, a, o in zip(frame["source"], frame["action"], frame["operation"], strict=True)
    ]
    return _ok(frame) & np.array(flags, dtype=bool)


def known_secrets(
    history: pd.DataFrame, evidence: Evidence, cfg: ReportConfig, period: Period
) -> pd.DataFrame:
    """The inventory: every secret some event succeeded on (folders excluded) and every
    secret the inventory file lists, with first seen, last read and last new value over
    the whole history, owner, and whether rotation applies."""
    ok = history[_ok(history) & _named(history["secret"])]
    seen = ok.groupby(SECRET).agg(first_seen=("first_ts", "min")).reset_index()
    read = ok[ok["action"] == "read"].groupby(SECRET)["last_ts"].max().rename("last_read")
    new = history[_new_value(history)].sort_values("last_ts").groupby(SECRET).tail(1)
    new = new.set_index(SECRET)[["last_ts", "operation"]]
    new.columns = ["last_rotated", "rotated_by"]
    listed = _listed(evidence, seen)
    known = seen.merge(listed, on=SECRET, how="outer")
    known["listed"] = known["listed"].fillna(False).astype(bool)
    known = known.join(read, on=SECRET).join(new, on=SECRET)
    known["rotated_by"] = known["rotated_by"].fillna("")
    owners = [evidence.owner(s, x) for s, x in zip(known["source"], known["secret"], strict=True)]
    known["owner"] = [o or "" for o, _ in owners]
    known["owner_from"] = [w for _, w in owners]
    known["rotation"] = [
        "exempt" if evidence.rotation_exempt(s, x)
        else "dynamic" if is_dynamic(s, x, cfg.kv2_mounts) else "required"
        for s, x in zip(known["source"], known["secret"], strict=True)
    ]  # fmt: skip
    return known.sort_values(SECRET, ignore_index=True)


def _listed(evidence: Evidence, seen: pd.DataFrame) -> pd.DataFrame:
    """Inventory-file secrets, placed on the backends they were seen on (or the one the
    file names, or "" when neither says)."""
    rows = []
    for item in evidence.inventory.secrets:
        match = seen[(seen["source"] == item.source) & (seen["secret"] == item.secret)]
        if item.backend is not None:
            backends = [item.backend]
        else:
            backends = sorted(match["backend"]) or [""]
        rows += [(item.source, b, item.secret, True) for b in backends]
    frame = pd.DataFrame(rows, columns=[*SECRET, "listed"]).drop_duplicates(SECRET)
    return frame.astype({"listed": object})


def _pair_reads(summary: pd.DataFrame) -> pd.DataFrame:
    """Successful reads in the period per (identity, source, backend, secret)."""
    ok = summary[_ok(summary) & (summary["action"] == "read")]
    keys = ["identity", *SECRET]
    out = ok.groupby(keys).agg(reads=("events", "sum"), last_read=("last_ts", "max"))
    return out.reset_index()


def secret_table(known: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per known secret: owner, accessors and reads in the period with first and last
    read, denied attempts, new values written, and the history-wide last read and last
    rotation."""
    period = summary[summary["secret"] != ""]
    ok_read = period[_ok(period) & (period["action"] == "read")]
    per = ok_read.groupby(SECRET).agg(
        accessors=("identity", "nunique"), reads=("events", "sum"),
        first_read=("first_ts", "min"), last_read_in_period=("last_ts", "max"),
    )  # fmt: skip
    denied = period[period["outcome"] == "denied"].groupby(SECRET)["events"].sum()
    written = period[_new_value(period)].groupby(SECRET)["events"].sum()
    table = known.join(per, on=SECRET).join(denied.rename("denied"), on=SECRET)
    table = table.join(written.rename("new_values"), on=SECRET)
    for name in ("accessors", "reads", "denied", "new_values"):
        table[name] = table[name].fillna(0).astype("int64")
    columns = [
        *SECRET, "owner", "owner_from", "accessors", "reads", "first_read",
        "last_read_in_period", "denied", "new_values", "first_seen", "last_read",
        "last_rotated", "rotated_by", "rotation", "listed",
    ]  # fmt: skip
    return table[columns].sort_values(SECRET, ignore_index=True)


def accessor_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per secret and identity in the period: successful reads, denied attempts, other
    successful actions, first and last event."""
    period = summary[summary["secret"] != ""].copy()
    ok = period["outcome"] == "success"
    period["reads"] = np.where(ok & (period["action"] == "read"), period["events"], 0)
    period["denied"] = np.where(period["outcome"] == "denied", period["events"], 0)
    period["other"] = np.where(ok & (period["action"] != "read"), period["events"], 0)
    keys = [*SECRET, "identity"]
    out = period.groupby(keys).agg(
        identity_kind=("identity_kind", "max"), reads=("reads", "sum"), denied=("denied", "sum"),
        other=("other", "sum"), first_ts=("first_ts", "min"), last_ts=("last_ts", "max"),
    )  # fmt: skip
    return out.reset_index().sort_values(keys, ignore_index=True)


def identity_table(
    summary: pd.DataFrame, hourly: pd.DataFrame, alerts: pd.DataFrame
) -> pd.DataFrame:
    """Per identity active in the period: kind, sources, distinct secrets read, reads,
    all events, denied, hours with any activity, first and last event, alerts raised."""
    frame = summary.copy()
    ok_read = _ok(frame) & (frame["action"] == "read")
    frame["reads"] = np.where(ok_read, frame["events"], 0)
    frame["read_secret"] = frame["secret"].where(ok_read, None)
    frame["denied"] = np.where(frame["outcome"] == "denied", frame["events"], 0)
    kinds = (
        frame.groupby(["identity", "identity_kind"])["events"].sum().reset_index()
        .sort_values(["identity", "events", "identity_kind"], ascending=[True, False, True])
        .drop_duplicates("identity").set_index("identity")["identity_kind"]
    )  # fmt: skip
    per = frame.groupby("identity").agg(
        sources=("source", lambda s: ",".join(sorted(set(s)))),
        secrets_read=("read_secret", "nunique"), reads=("reads", "sum"),
        events=("events", "sum"), denied=("denied", "sum"),
        first_ts=("first_ts", "min"), last_ts=("last_ts", "max"),
    )  # fmt: skip
    per.insert(0, "identity_kind", kinds)
    per["hours_active"] = hourly.groupby("identity")["hour"].nunique().reindex(per.index)
    per["alerts"] = alerts.groupby("identity").size().reindex(per.index)
    for name in ("hours_active", "alerts", "secrets_read", "reads", "events", "denied"):
        per[name] = per[name].fillna(0).astype("int64")
    columns = [
        "identity_kind", "sources", "secrets_read", "reads", "events", "denied",
        "hours_active", "first_ts", "last_ts", "alerts",
    ]  # fmt: skip
    return per[columns].reset_index().sort_values("identity", ignore_index=True)


def unused_table(known: pd.DataFrame, period: Period, days: int) -> pd.DataFrame:
    """Secrets with no successful read in the `days` before the period's end that were
    known before that window began (or are listed in the inventory): a secret created
    last week has not been unused for 90 days."""
    start = pd.Timestamp(period.until - timedelta(days=days))
    idle = known["last_read"].isna() | (known["last_read"] < start)
    old = known["first_seen"].isna() | (known["first_seen"] < start) | known["listed"]
    out = known.loc[idle & old, [*SECRET, "owner", "first_seen", "last_read", "listed"]].copy()
    out["days_since_read"] = _days_since(out["last_read"], period)
    return out.reset_index(drop=True)


def stale_table(known: pd.DataFrame, period: Period, days: int) -> pd.DataFrame:
    """Secrets that need rotation and show no new value in the `days` before the
    period's end: `overdue` (last rotation older) or `no evidence` (none recorded)."""
    start = pd.Timestamp(period.until - timedelta(days=days))
    due = known["rotation"] == "required"
    stale = known["last_rotated"].isna() | (known["last_rotated"] < start)
    columns = [*SECRET, "owner", "first_seen", "last_rotated", "rotated_by"]
    out = known.loc[due & stale, columns].copy()
    out["days_since_rotation"] = _days_since(out["last_rotated"], period)
    out["status"] = np.where(out["last_rotated"].isna(), "no evidence", "overdue")
    return out.reset_index(drop=True)


def _days_since(stamps: pd.Series, period: Period) -> pd.Series:
    end = pd.Timestamp(period.until)
    return ((end - stamps) / timedelta(days=1)).apply(np.floor).astype("Int64")


def denied_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Denied attempts in the period per identity and target (secret or none)."""
    denied = summary[summary["outcome"] == "denied"]
    keys = ["identity", *SECRET]
    out = denied.groupby(keys).agg(
        denied=("events", "sum"), actions=("action", lambda s: ",".join(sorted(set(s)))),
        first_ts=("first_ts", "min"), last_ts=("last_ts", "max"),
    )  # fmt: skip
    return out.reset_index().sort_values(keys, ignore_index=True)


def _sources(history: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = history[["source", "backend"]].drop_duplicates()
    return sorted(zip(pairs["source"], pairs["backend"], strict=True))
