"""Backtest: hide the largest proxies, predict them, report errors and coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest

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


def test_holding_out_the_largest_size_scores_the_mean_of_its_runs() -> None:
    rng = np.random.default_rng(5)
    n = np.repeat(np.geomspace(1e6, 3e8, 6), 3)
    seeds = np.tile([0, 1, 2], 6)
    y = mu_law(n) * np.exp(0.005 * rng.standard_normal(len(n)))
    held = predictor.hold_out_largest(n, y, seeds=seeds)
    assert held is not None and held.runs == 3 and held.n == n.max()
    assert held.measured == np.mean(y[n == n.max()])
    assert held.extrapolation_factor > 1 and held.lower < held.mean < held.upper
    assert held.inside and abs(held.error) < 0.02
    d = json.loads(json.dumps(held.to_dict()))
    assert d["runs"] == 3 and d["inside"] is True and d["error"] == held.error


def test_a_law_that_bends_away_beyond_the_ladder_is_caught_by_its_own_holdout() -> None:
    # The largest size lands 5 % above the law the smaller ones follow (a ladder whose gains stall).
    n = np.repeat(np.geomspace(1e6, 3e8, 6), 2)
    y = mu_law(n) * np.exp(0.002 * np.tile([-1.0, 1.0], 6))
    y[n == n.max()] *= 1.05
    held = predictor.hold_out_largest(n, y, seeds=np.tile([0, 1], 6))
    assert held is not None and not held.inside
    assert held.error == pytest.approx(-0.05 / 1.05, abs=0.01)  # the law promised less loss than came


def test_no_holdout_check_without_enough_smaller_sizes() -> None:
    n = np.geomspace(1e6, 1e8, 4)  # 3 smaller sizes for a 3-parameter law: nothing left to test it
    assert predictor.hold_out_largest(n, mu_law(n)) is None
    grid = np.column_stack([np.repeat(np.geomspace(1e6, 1e8, 4), 3), np.tile([1e9, 2e9, 4e9], 4)])
    assert predictor.hold_out_largest(grid, np.full(12, 3.0), law="chinchilla") is None
