"""The Chinchilla form on Epoch's points reproduces Besiroglu et al. 2024 (numbers in reference/README.md)."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from tests.predictor.helpers import chinchilla_points

# Epoch's reported estimates and bootstrap standard errors (Besiroglu et al. 2024, Table 1).
EPOCH = {
    "E": (1.817, 0.026),
    "A": (482.0, 124.5),
    "B": (2085.0, 1293.0),
    "alpha": (0.3478, 0.0154),
    "beta": (0.3658, 0.0206),
}
# The optimum L-BFGS-B reaches from Epoch's 4,500-start grid on the same 240 points.
GRID_OPTIMUM = {"E": 1.817, "A": 477.8, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672}


@pytest.fixture(scope="module")
def reference_fit() -> predictor.FitResult:
    x, loss = chinchilla_points()
    # Epoch's method: Huber δ = 1e-3 on log residuals, case bootstrap for the standard errors.
    return predictor.fit(
        x, loss, law="chinchilla", loss="huber", delta=1e-3, bootstrap_scheme="cases", n_bootstrap=300, seed=1
    )


def test_point_estimates_within_epochs_standard_errors(reference_fit: predictor.FitResult) -> None:
    assert reference_fit.success and reference_fit.n_points == 240
    for name in ("E", "alpha", "beta"):
        estimate, se = EPOCH[name]
        assert abs(reference_fit.params[name] - estimate) < se, name
    # And the same optimum as the brute-force grid, to its printed digits.
    for name, value in GRID_OPTIMUM.items():
        assert reference_fit.params[name] == pytest.approx(value, rel=1e-3), name


def test_case_bootstrap_errors_match_epochs(reference_fit: predictor.FitResult) -> None:
    # 300 resamples estimate a standard error to about ±4 %; Epoch's are from their own bootstrap.
    for name in ("E", "alpha", "beta"):
        err = reference_fit.stderr[name]
        assert err is not None
        assert err == pytest.approx(EPOCH[name][1], rel=0.25), name


def test_prediction_on_the_reference_fit(reference_fit: predictor.FitResult) -> None:
    # Chinchilla itself: 70B parameters, 1.4T tokens, within the data's range of N.
    pred = reference_fit.predict([70e9, 1.4e12])
    assert reference_fit.params["E"] < pred.lower < pred.mean < pred.upper < 2.2
    curve = reference_fit.predict(np.column_stack([np.geomspace(1e8, 1e11, 5), np.full(5, 1e12)]))
    assert np.all(np.diff(np.asarray(curve.mean)) < 0)
