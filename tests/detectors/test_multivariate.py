from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, row

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
