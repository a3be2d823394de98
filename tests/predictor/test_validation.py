"""Bad input fails early with a ValueError that says what to do."""

from __future__ import annotations

import numpy as np
import pytest

import predictor

N = [1e6, 2e6, 4e6, 8e6, 1.6e7]
Y = [4.0, 3.7, 3.5, 3.3, 3.2]


@pytest.mark.parametrize(
    ("x", "y", "options", "message"),
    [
        (N[:3], Y[:3], {}, r"mu_scaling needs at least 4 points \(one more than its 3 parameters\); got 3"),
        ([1e6, 1e6, 2e6, 2e6], Y[:4], {}, "at least 4 distinct x values .* got 2: replicate seeds"),
        ([0.0, *N[1:]], Y, {}, "x must be positive"),
        ([-1e6, *N[1:]], Y, {}, "x must be positive"),
        (N, [0.0, *Y[1:]], {}, "losses must be positive"),
        ([np.nan, *N[1:]], Y, {}, "x holds NaN or inf at index \\[0\\]"),
        (N, [*Y[:4], np.inf], {}, "y holds NaN or inf at index \\[4\\]"),
        (N, Y[:4], {}, "same length, one loss per point; got 5 and 4"),
        (N, Y, {"weights": [1, 1, 1]}, "one value per point"),
        (N, Y, {"weights": [1, 1, 1, 1, 0]}, "weights must be positive"),
        (N, Y, {"law": "kaplan2"}, "unknown law 'kaplan2': choose one of mu_scaling, power, chinchilla"),
        (N, Y, {"law": "kaplan"}, r"kaplan takes x as an \(n, 2\) array of N, D"),
        (N, Y, {"loss": "l1"}, "unknown loss 'l1'"),
        (N, Y, {"n_bootstrap": 50}, "n_bootstrap must be 0 .* or at least 200"),
        (N, Y, {"delta": 0.0}, "delta must be a positive number"),
        (N, Y, {"bootstrap_scheme": "wild"}, "unknown bootstrap_scheme"),
        (N, Y, {"law": "chinchilla"}, r"chinchilla takes x as an \(n, 2\) array of N, D"),
        ([[1e6, 1e9]] * 5, Y, {}, "mu_scaling takes x as a 1-D array of N"),
    ],
)
def test_bad_input_is_a_clear_value_error(x: object, y: object, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predictor.fit(x, y, **options)


def test_bad_prediction_queries() -> None:
    result = predictor.fit(N, Y, n_bootstrap=200)
    with pytest.raises(ValueError, match="level must lie in"):
        result.predict(1e9, level=1.5)
    with pytest.raises(ValueError, match="finite and positive"):
        result.predict(-1.0)
    with pytest.raises(ValueError, match="1-column x"):
        result.predict([[1e9, 2e9]])


def test_backtest_holdout_must_leave_enough_points() -> None:
    with pytest.raises(ValueError, match="holdout must be between 1 and 4"):
        predictor.backtest(N, Y, holdout=5)
    with pytest.raises(ValueError, match="holdout=2 leaves 3 distinct x values; mu_scaling needs 4"):
        predictor.backtest(N, Y, holdout=2)
