from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, frame, row, world

from detectors.multivariate import FEATURES, Model


def test_model_is_fitted_on_a_holdout(trained):
    model = trained.model
    assert isinstance(model, Model)
    assert model.rows > 500 and len(model.center) == len(FEATURES)


def test_an_hour_unlike_any_other(trained):
    rows = [
        row(
            "orders/orders-api",
            after(4) + timedelta(seconds=9 * i),
            f"secret/orders/k{i}",
            action="list" if i % 2 else "read",
            outcome="denied" if i % 3 else "success",
        )
        for i in range(30)
    ]
    [finding] = judge("multivariate", trained, rows)
    assert finding.score >= 1.5 and "unlike any of the" in finding.explanation
    assert len(finding.evidence) == 30


def test_an_ordinary_hour(trained):
    rows = [row("orders/orders-api", after(4) + timedelta(minutes=10 * i)) for i in range(5)]
    assert judge("multivariate", trained, rows) == []


def test_no_model_no_findings(trained):
    trained.model = None
    assert judge("multivariate", trained, [row("orders/orders-api", after(4))]) == []


def _features_one_by_one(base, ev, mask, rows, now_us):  # noqa: ANN001, ANN202
    """The features as they were computed before, one identity-hour at a time: the
    reference the vectorized `features` must equal exactly."""
    import numpy as np

    from detectors.events import group

    keys, out = [], []
    for pos in group((ev.icode << 40) | ev.uhour, np.flatnonzero(mask)):
        first = pos[0]
        r, hour = int(rows[first]), int(ev.uhour[first])
        touched = set(ev.secret[pos[ev.access[pos]]])
        seen_nets = {n for n in ev.net[pos] if n}
        seasonal, pooled = base.rate_ref(r, hour)
        usage, _ = base.usage(r, int(ev.how[first]), now_us)
        act = ev.action[pos]
        out.append(
            (
                np.log1p(len(pos)),
                np.log1p(len(touched)),
                np.log1p(int(ev.denied[pos].sum())),
                np.log1p(int((act == "list").sum())),
                np.log1p(int(np.isin(act, ("write", "delete")).sum())),
                np.log1p(len(pos)) - np.log1p(max(seasonal, pooled / 2)),
                usage,
                np.log1p(len(touched - base.secrets[r])),
                np.log1p(len(seen_nets - base.nets[r])),
                np.log1p(len(seen_nets)),
            )
        )
        keys.append((ev.identity[first], hour, pos))
    return keys, np.asarray(out, dtype=np.float64)


def test_features_equal_the_one_by_one_reference(trained, history):  # noqa: ANN001
    import numpy as np

    from detectors.multivariate import features

    late = [
        row("orders/orders-api", after(4), secret="secret/orders/new"),  # noqa: S106 - a path
        row("orders/orders-api", after(4.1), outcome="denied"),
        row("alice", after(30), action="list", ip="198.51.100.7"),
        row("stranger", after(31), secret="secret/payments/db"),  # noqa: S106 - a path
        row("payments/payments-api", after(31.5), action="write"),
    ]
    ev = frame([*late, *[r for r in world(days=3, seed=5)]])
    rows = trained.ids(ev.identity)
    mask = np.ones(len(ev), dtype=bool)
    mask[::7] = False  # gaps, so groups are not simply every event
    now_us = int(ev.ts_us.max())
    keys, x = features(trained, ev, mask, rows, now_us)
    want_keys, want = _features_one_by_one(trained, ev, mask, rows, now_us)
    assert len(keys) == len(want_keys) > 50
    for (identity, hour, pos), (w_identity, w_hour, w_pos) in zip(keys, want_keys, strict=True):
        assert (identity, hour) == (w_identity, w_hour)
        assert list(pos) == list(w_pos)
    assert np.array_equal(x, want)  # exactly: alerts and the golden replay depend on it
