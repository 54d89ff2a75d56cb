"""Multivariate model: an Isolation Forest over per identity-hour features, for what no
single rule sees (a few more secrets than usual, a denial or two, a slightly odd hour and a
list, all at once).

It is fitted on a holdout: baselines are learned from the first two thirds of the training
window and the features of the last third are computed against them, so the model sees
realistic novelty (new secrets, new networks) rather than a history that already contains
every hour it is shown. An hour alerts only when it is more anomalous than every holdout
hour (`threshold` x that maximum); the explanation names the features furthest from the
holdout's typical values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from detectors.alert import Finding
from detectors.baseline import Baselines
from detectors.batch import Batch
from detectors.events import HOUR_US
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
    forest: IsolationForest
    cut: float  # the most anomalous holdout hour's score
    center: np.ndarray  # holdout medians, for explanations
    spread: np.ndarray  # holdout interquartile ranges
    rows: int  # holdout identity-hours it was fitted on


def features(
    base: Baselines, frame: pd.DataFrame, mask: np.ndarray, rows: np.ndarray, now_us: int
) -> tuple[list[tuple[str, int, np.ndarray]], np.ndarray]:
    """One feature row per (identity, UTC hour) among the events under `mask`, with the
    event positions behind each row."""
    positions = np.flatnonzero(mask)
    keys: list[tuple[str, int, np.ndarray]] = []
    if not len(positions):
        return keys, np.zeros((0, len(FEATURES)))
    secrets, nets = frame["secret"].to_numpy(), frame["net"].to_numpy()
    actions, denied = frame["action"].to_numpy(), frame["denied"].to_numpy()
    access, how = frame["access"].to_numpy(), frame["how"].to_numpy()
    sub = frame.iloc[positions]
    out = []
    for (identity, hour), idx in sub.groupby(["identity", "uhour"], sort=True).indices.items():
        pos = positions[idx]
        r = int(rows[pos[0]])
        touched = set(secrets[pos[access[pos]]])
        seen_nets = {n for n in nets[pos] if n}
        seasonal, pooled = base.rate_ref(r, int(hour))
        usage, _ = base.usage(r, int(how[pos[0]]), now_us)
        act = actions[pos]
        out.append(
            (
                np.log1p(len(pos)),
                np.log1p(len(touched)),
                np.log1p(int(denied[pos].sum())),
                np.log1p(int((act == "list").sum())),
                np.log1p(int(np.isin(act, ("write", "delete")).sum())),
                np.log1p(len(pos)) - np.log1p(max(seasonal, pooled / 2)),
                usage,
                np.log1p(len(touched - base.secrets[r])),
                np.log1p(len(seen_nets - base.nets[r])),
                np.log1p(len(seen_nets)),
            )
        )
        keys.append((identity, int(hour), pos))
    return keys, np.asarray(out, dtype=np.float64)


def fit(
    early: Baselines, holdout: pd.DataFrame, cfg: Multivariate, warm: np.ndarray, now_us: int
) -> Model | None:
    """Fit on the holdout's identity-hours (None when there are too few to trust)."""
    rows = early.ids(holdout["identity"].to_numpy())
    _, x = features(early, holdout, warm, rows, now_us)
    if len(x) < cfg.min_rows:
        return None
    forest = IsolationForest(n_estimators=cfg.trees, random_state=0).fit(x)
    anomaly = -forest.score_samples(x)
    q1, q3 = np.percentile(x, [25, 75], axis=0)
    return Model(forest, float(anomaly.max()), np.median(x, axis=0), q3 - q1, len(x))


def detect(base: Baselines, batch: Batch, cfg: Multivariate) -> list[Finding]:
    model = base.model
    if not isinstance(model, Model):
        return []
    keys, x = features(base, batch.frame, batch.warm, batch.rows, batch.start_us)
    if not len(x):
        return []
    anomaly = -model.forest.score_samples(x)
    findings = []
    for (identity, hour, pos), row, a in zip(keys, x, anomaly, strict=True):
        score = a / model.cut
        if score < cfg.threshold:
            continue
        z = np.abs(row - model.center) / np.maximum(model.spread, 0.25)
        top = np.argsort(-z)[:3]
        described = ", ".join(
            f"{FEATURES[i]} {_show(i, row[i])} (typical {_show(i, model.center[i])})" for i in top
        )
        start = hour * HOUR_US
        findings.append(
            Finding(
                detector="multivariate",
                identity=identity,
                start_us=start,
                end_us=start + HOUR_US,
                at_us=batch.first_us(pos),
                score=float(score),
                threshold=cfg.threshold,
                severity=cfg.severity,
                explanation=(
                    f"{identity}'s hour from {batch.when(start)} is unlike any of the "
                    f"{model.rows} training hours (anomaly {a:.2f}, most in training "
                    f"{model.cut:.2f}): {described}."
                ),
                evidence=batch.ids(pos),
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
