"""Multivariate model: a Gaussian mixture over per identity-hour features, for what no single
rule sees (a few more secrets than usual, a denial or two, a slightly odd hour and a list,
all at once). A density model, unlike an Isolation Forest, keeps scoring an hour as more
anomalous the further it lies beyond anything seen, so an extreme hour is never mistaken for
the merely unusual.

It is fitted on a holdout: baselines are learned from the first two thirds of the training
window and the features of the last third are computed against them, so the model sees
realistic novelty (new secrets, new networks) rather than a history that already contains
every hour it is shown. The score is 0 for the holdout's median hour and 1 for its most
anomalous one; an hour alerts past `threshold`. The explanation names the features furthest
from the holdout's typical values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.mixture import GaussianMixture

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch
from detectors.events import Events
from detectors.finding import finding, hour_window
from detectors.settings import Multivariate

FEATURES = (
    "requests",
    "secrets",
    "denied",
    "lists",
    "writes",
    "rate_vs_norm",
    "hour_usage",
    "new_secrets",
    "new_networks",
    "networks",
)


@dataclass
class Model:
    mixture: GaussianMixture
    center: np.ndarray  # holdout medians (features are scaled by these and `spread`)
    spread: np.ndarray  # holdout interquartile ranges, at least 0.25
    typical: float  # the median holdout hour's anomaly (negative log density)
    cut: float  # the most anomalous holdout hour's
    rows: int  # holdout identity-hours it was fitted on

    def anomaly(self, x: np.ndarray) -> np.ndarray:
        # sklearn has no type information: score_samples gives one float per row of x.
        log_density: np.ndarray = self.mixture.score_samples((x - self.center) / self.spread)
        return -log_density

    def score(self, x: np.ndarray) -> np.ndarray:
        return (self.anomaly(x) - self.typical) / max(self.cut - self.typical, 1e-9)


def features(
    base: Baselines, ev: Events, mask: np.ndarray, rows: np.ndarray, now_us: int
) -> tuple[list[tuple[str, int, np.ndarray]], np.ndarray]:
    """One feature row per (identity, UTC hour) among the events under `mask`, with the
    event positions behind each row, in (identity code, hour) order. Computed for all rows
    at once: a loop over identity-hours cost more than the rest of detection."""
    selected = np.flatnonzero(mask)
    if not len(selected):
        return [], np.zeros((0, len(FEATURES)))
    key = (ev.icode[selected] << 40) | ev.uhour[selected]
    order = np.argsort(key, kind="stable")
    pos = selected[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key[order])) + 1]
    sizes = np.diff(np.r_[starts, len(pos)])
    gid = np.repeat(np.arange(len(starts)), sizes)  # each position's identity-hour
    first = pos[starts]
    r, hour = rows[first].astype(np.int64), ev.uhour[first]
    act = ev.action[pos]

    def per_group(flags: np.ndarray) -> np.ndarray:
        return np.add.reduceat(flags.astype(np.int64), starts)

    access = ev.access[pos]
    secrets_touched, secrets_new = _distinct(
        gid[access], ev.scode[pos][access], ev.secret[pos][access], r, base.secrets
    )
    netted = ev.net[pos] != ""
    nets_seen, nets_new = _distinct(
        gid[netted], ev.ncode[pos][netted], ev.net[pos][netted], r, base.nets
    )
    seasonal, pooled = base.rate_refs(r, hour)
    requests = np.log1p(sizes.astype(np.float64))
    x = np.column_stack(
        (
            requests,
            np.log1p(_counts(secrets_touched, len(starts))),
            np.log1p(per_group(ev.denied[pos])),
            np.log1p(per_group(act == "list")),
            np.log1p(per_group((act == "write") | (act == "delete"))),
            requests - np.log1p(np.maximum(seasonal, pooled / 2)),
            base.usages(r, ev.how[first], now_us),
            np.log1p(_counts(secrets_new, len(starts))),
            np.log1p(_counts(nets_new, len(starts))),
            np.log1p(_counts(nets_seen, len(starts))),
        )
    ).astype(np.float64)
    groups = np.split(pos, starts[1:])
    keys = [(ev.identity[f], int(h), g) for f, h, g in zip(first, hour, groups, strict=True)]
    return keys, x


def _distinct(
    gid: np.ndarray, codes: np.ndarray, values: np.ndarray, rows: np.ndarray, known: list[set[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct (group, value): its group, and the groups of those values the
    group's identity has not seen before (`known[row]`)."""
    if not len(gid):
        return gid, gid
    order = np.lexsort((codes, gid))
    g, c = gid[order], codes[order]
    new = np.r_[True, (g[1:] != g[:-1]) | (c[1:] != c[:-1])]
    g, v = g[new], values[order][new]
    unseen = np.fromiter(
        (value not in known[row] for value, row in zip(v, rows[g], strict=True)),
        dtype=bool,
        count=len(g),
    )
    return g, g[unseen]


def _counts(groups: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(groups, minlength=n).astype(np.float64)


def fit(
    early: Baselines, holdout: Events, cfg: Multivariate, warm: np.ndarray, now_us: int
) -> Model | None:
    """Fit on the holdout's identity-hours (None when there are too few to trust)."""
    rows = early.ids(holdout.identity)
    _, x = features(early, holdout, warm, rows, now_us)
    if len(x) < cfg.min_rows:
        return None
    center = np.median(x, axis=0)
    q1, q3 = np.percentile(x, [25, 75], axis=0)
    spread = np.maximum(q3 - q1, 0.25)
    mixture = GaussianMixture(
        n_components=min(cfg.components, len(x) // 100),
        covariance_type="full",
        reg_covar=0.05,  # features with one value in the holdout must not become singular
        random_state=0,
    ).fit((x - center) / spread)
    model = Model(mixture, center, spread, 0.0, 1.0, len(x))
    anomaly = model.anomaly(x)
    model.typical, model.cut = float(np.median(anomaly)), float(anomaly.max())
    return model


def detect(base: Baselines, batch: Batch, cfg: Multivariate) -> list[Finding]:
    model = base.model
    if not isinstance(model, Model):
        return []
    keys, x = features(base, batch.ev, batch.warm, batch.rows, batch.start_us)
    if not len(x):
        return []
    scores = model.score(x)
    findings = []
    for (identity, hour, pos), row, score in zip(keys, x, scores, strict=True):
        if score < cfg.threshold:
            continue
        z = np.abs(row - model.center) / model.spread
        top = np.argsort(-z)[:3]
        described = ", ".join(
            f"{FEATURES[i]} {_show(i, row[i])} (typical {_show(i, model.center[i])})" for i in top
        )
        span = hour_window(hour)
        findings.append(
            finding(
                "multivariate",
                cfg,
                batch,
                identity=identity,
                span=span,
                evidence=pos,
                score=float(score),
                explanation=(
                    f"{identity}'s hour from {batch.when(span[0])} is unlike any of the "
                    f"{model.rows} training hours ({score:.1f}x as far out as the furthest "
                    f"of them): {described}."
                ),
            )
        )
    return findings


def _show(feature: int, value: float) -> str:
    name = FEATURES[feature]
    if name == "hour_usage":
        return f"{value:.0%}"
    if name == "rate_vs_norm":
        return f"x{np.exp(value):.1f}"
    return str(round(float(np.expm1(value))))
