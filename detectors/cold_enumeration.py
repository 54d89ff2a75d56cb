"""Cold enumeration: an identity with no history (or too little to be judged against) that
reads many secrets it never read within a minute, or right after listing them. Fresh
credentials used to map a backend look exactly like this (Stratus Red Team's
`aws.credential-access.secretsmanager-retrieve-secrets`: ListSecrets, then GetSecretValue on
20 secrets in 4 seconds), and the enumeration detector, which needs a norm or twice its
floor for new identities, lets it pass.

Counted are first reads: secrets the identity had not read before (in its history or earlier
in the batch), read successfully, in a sliding window. A service starting up re-reads what
it read yesterday and does not list first; a sweep reads new names. A read by filter or by
path whose record names no secrets (BatchGetSecretValue by tag, GetParametersByPath) is a
bulk read of an unknown number of secrets: it is never counted as many, but from an identity
without history it is alerted on its own (`bulk_reads`). A new member of a group (same
namespace, role path or team, see detectors.peers) starts from what its group reads: a new
replica reading its peers' configuration is not a sweep."""

from __future__ import annotations

import numpy as np

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch, plural, sample
from detectors.finding import finding
from detectors.peers import group_secrets
from detectors.settings import ColdEnumeration

_SHIFT = 40  # identity code above, microseconds since the batch's first event below


def bulk(secrets: np.ndarray) -> np.ndarray:
    """Which secret names stand for many secrets: a wildcard or a folder.

    >>> bulk(np.array(["arn:aws:secretsmanager:r:1:secret:*", "a/b/", "a/b"], dtype=object))
    array([ True,  True, False])
    """
    if not len(secrets):
        return np.zeros(0, bool)
    text = secrets.astype(str)
    return np.char.endswith(text, "*") | np.char.endswith(text, "/")


def first_reads(base: Baselines, batch: Batch, reads: np.ndarray) -> np.ndarray:
    """Positions of the reads under `reads` that are the identity's first of that secret:
    the first in the batch of each (identity, secret), unless its history holds it."""
    ev = batch.ev
    pos = np.flatnonzero(reads)
    _, first = np.unique((ev.icode[pos] << 32) | ev.scode[pos], return_index=True)
    firsts = pos[np.sort(first)]
    rows = batch.rows[firsts]
    known = rows >= 0
    if known.any():  # one check per distinct (identity, secret), not per event
        pairs = zip(firsts[known], rows[known], strict=True)
        seen = np.array([ev.secret[i] in base.secrets[r] for i, r in pairs], bool)
        drop = np.flatnonzero(known)[seen]
        firsts = np.delete(firsts, drop)
    return firsts


def outside_group(base: Baselines, batch: Batch, firsts: np.ndarray, least: int) -> np.ndarray:
    """Drop the first reads of secrets the identity's group reads (detectors.peers): a
    new member starts from its group's baseline. Only for identities with `least` first
    reads or more, the ones that could make a sweep."""
    ev = batch.ev
    codes, counts = np.unique(ev.icode[firsts], return_counts=True)
    keep = np.ones(len(firsts), bool)
    for code in codes[counts >= least]:
        mine = np.flatnonzero(ev.icode[firsts] == code)
        known = group_secrets(base, ev.identity[firsts[mine[0]]], batch.cfg.policies)
        if known:
            keep[mine] = [ev.secret[i] not in known for i in firsts[mine]]
    kept: np.ndarray = firsts[keep]
    return kept


def detect(base: Baselines, batch: Batch, cfg: ColdEnumeration) -> list[Finding]:
    ev = batch.ev
    cold = ~batch.warm & (ev.identity != "")
    if not cold.any():
        return []
    ok = cold & ev.access & ~ev.denied
    reads = ok & (ev.action == "read")
    many = np.zeros(len(ev), bool)
    touched = np.flatnonzero(ok)
    many[touched] = bulk(ev.secret[touched])  # string tests on the few cold accesses only
    lists = cold & ev.access & (ev.action == "list")
    firsts = first_reads(base, batch, reads & ~many)
    firsts = outside_group(base, batch, firsts, min(cfg.min_distinct, cfg.after_list))
    window = cfg.window_seconds * 1_000_000
    lookback = int(cfg.list_lookback_minutes * 60_000_000)
    t0 = int(ev.ts_us.min()) - lookback - 1

    def keys(positions: np.ndarray) -> np.ndarray:
        k: np.ndarray = (ev.icode[positions] << _SHIFT) | (ev.ts_us[positions] - t0)
        return k

    # Sliding windows: one starting at each first read, counting the first reads in it (the
    # keys are sorted by identity, then time, so a window never reaches into the next one).
    order = np.lexsort((ev.ts_us[firsts], ev.icode[firsts]))
    f = firsts[order]
    fk = keys(f)
    counts = np.searchsorted(fk, fk + window) - np.arange(len(f))
    lk = np.sort(keys(np.flatnonzero(lists)))
    # A listing before the window's first read (up to `list_lookback_minutes` before it).
    listed = np.searchsorted(lk, fk, side="right") > np.searchsorted(lk, fk - lookback)
    score = np.maximum(counts / cfg.min_distinct, np.where(listed, counts / cfg.after_list, 0))
    findings = []
    hot = score >= cfg.threshold
    if hot.any() or (cfg.bulk_reads and (reads & many).any()):
        for identity, _, pos in batch.groups(cold):
            mine = ev.icode[f] == ev.icode[pos[0]]
            if mine.any() and hot[mine].any():
                best = int(np.flatnonzero(mine)[np.argmax(score[mine])])
                found = _sweep(base, batch, cfg, identity, pos, f, best, counts, score)
            elif cfg.bulk_reads and (reads & many)[pos].any():
                found = _bulk(base, batch, cfg, identity, pos, reads & many, lists, lookback)
            else:
                continue
            findings.append(found)
    return findings


def _history(base: Baselines, batch: Batch, pos: np.ndarray) -> str:
    r = int(batch.rows[pos[0]])
    if r < 0:
        return "an identity never seen before"
    return (
        f"an identity with little history ({plural(int(base.active_days[r]), 'active day')} "
        f"since {batch.when(int(base.first_us[r]))})"
    )


def _sweep(
    base: Baselines,
    batch: Batch,
    cfg: ColdEnumeration,
    identity: str,
    pos: np.ndarray,
    f: np.ndarray,
    best: int,
    counts: np.ndarray,
    score: np.ndarray,
) -> Finding:
    ev = batch.ev
    window = cfg.window_seconds * 1_000_000
    lookback = int(cfg.list_lookback_minutes * 60_000_000)
    start = int(ev.ts_us[f[best]])
    swept = f[best : best + int(counts[best])]
    names = set(ev.secret[swept])
    end = int(ev.ts_us[swept].max())
    t = ev.ts_us[pos]
    reads = (ev.action[pos] == "read") & (t >= start) & (t <= end) & ev.access[pos]
    listing = (ev.action[pos] == "list") & ev.access[pos] & (t >= start - lookback) & (t <= end)
    evidence = pos[reads | listing]
    seconds = max(1, round((end - start) / 1_000_000))
    n_lists = int(listing.sum())
    listed = (
        f"listed secrets ({plural(n_lists, 'call')} from {batch.when(int(t[listing].min()))}) "
        "and then "
        if n_lists
        else ""
    )
    rule = (
        f"{cfg.min_distinct} in {cfg.window_seconds} s, or {cfg.after_list} after a listing, "
        "is a sweep"
    )
    return finding(
        "cold_enumeration",
        cfg,
        batch,
        identity=identity,
        span=(start, start + window),
        evidence=evidence,
        score=float(score[best]),
        explanation=(
            f"{identity}, {_history(base, batch, pos)}, {listed}read "
            f"{plural(len(names), 'distinct secret')} it had not read before within "
            f"{plural(seconds, 'second')} from {batch.when(start)}: {sample(names)}; {rule}."
        ),
    )


def _bulk(
    base: Baselines,
    batch: Batch,
    cfg: ColdEnumeration,
    identity: str,
    pos: np.ndarray,
    bulk_reads: np.ndarray,
    lists: np.ndarray,
    lookback: int,
) -> Finding:
    ev = batch.ev
    mine = pos[bulk_reads[pos]]
    start, end = int(ev.ts_us[mine].min()), int(ev.ts_us[mine].max())
    t = ev.ts_us[pos]
    listing = pos[lists[pos] & (t >= start - lookback) & (t <= end)]
    evidence = np.sort(np.concatenate([mine, listing]))
    return finding(
        "cold_enumeration",
        cfg,
        batch,
        identity=identity,
        span=(start, end + 1),
        evidence=evidence,
        score=float(cfg.threshold),
        explanation=(
            f"{identity}, {_history(base, batch, pos)}, read secrets in bulk by filter or path "
            f"({plural(len(mine), 'call')} from {batch.when(start)} on "
            f"{sample(set(ev.secret[mine]))}); the records do not name the secrets read, so "
            "how many is unknown."
        ),
    )
