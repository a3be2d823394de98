"""Backtest: hide the largest proxies, predict them, report errors and coverage."""

from __future__ import annotations

import json

import numpy as np

import predictor
from tests.predictor.helpers import mu_law


def test_backtest_on_a_ladder_with_seeds() -> None:
    # μScaling's setting: fit the smaller widths, predict the larger ones (here 2 widths × 2 seeds).
    rng = np.random.default_rng(12)
    n = np.repeat(np.geomspace(1e6, 3e8, 9), 2)
    y = mu_law(n) * np.exp(0.005 * rng.standard_normal(len(n)))
    result = predictor.backtest(n, y, holdout=2)
    assert isinstance(result, predictor.Backtest)
    assert result.fit.n_points == 14 and len(result.y) == 4
    assert np.all(result.extrapolation_factor > 1)
    assert result.mean_abs_relative_error < 0.02
    assert result.coverage >= 0.75
    d = json.loads(json.dumps(result.to_dict()))
    assert (
        d["holdout"] == 2 and len(d["relative_error"]) == 4 and all(isinstance(c, bool) for c in d["covered"])
    )
    assert "coverage" in result.report()


def test_backtest_passes_options_to_fit() -> None:
    n = np.geomspace(1e6, 1e9, 8)
    result = predictor.backtest(n, mu_law(n), holdout=1, loss="lsq", n_bootstrap=200, level=0.8)
    assert result.fit.loss == "lsq" and result.level == 0.8
    assert abs(result.relative_error[0]) < 1e-4
