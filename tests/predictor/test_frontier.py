"""The compute-optimal frontier of an (N, D) fit: the allocation that minimises the law on 6ND = C,
intervals that cover the true allocation, and allocations at a tokens-per-parameter ratio."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from predictor.frontier import at_ratio, compute_of, compute_optimal

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022's fit


def law(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return TRUTH["E"] + TRUTH["A"] * n ** -TRUTH["alpha"] + TRUTH["B"] * d ** -TRUTH["beta"]


def grid(rng: np.random.Generator, sd: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(2e6, 2e8, 5), np.geomspace(2e8, 2e10, 4))
    n, d = np.repeat(n.ravel(), 2), np.repeat(d.ravel(), 2)  # two seeds per point
    seeds = np.tile([0, 1], len(n) // 2)
    return np.column_stack([n, d]), law(n, d) * np.exp(sd * rng.standard_normal(len(n))), seeds


def true_optimum(c: float) -> tuple[float, float]:
    a, b, alpha, beta = TRUTH["A"], TRUTH["B"], TRUTH["alpha"], TRUTH["beta"]
    g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
    n = g * (c / 6) ** (beta / (alpha + beta))
    return n, c / (6 * n)


def test_the_frontier_minimises_the_law_on_each_iso_flop_line() -> None:
    x, y, seeds = grid(np.random.default_rng(0), sd=1e-6)  # almost noise-free: the truth comes back
    fit = predictor.fit(x, y, law="chinchilla", seeds=seeds)
    budgets = np.array([1e20, 1e22, 1e24])
    frontier = compute_optimal(fit, budgets)
    assert compute_of(frontier.n_params, frontier.tokens) == pytest.approx(budgets)
    for c, n, d in zip(budgets, frontier.n_params, frontier.tokens, strict=True):
        assert (n, d) == pytest.approx(true_optimum(c), rel=0.02)
        # Any other split of the same budget loses more.
        for factor in (0.5, 0.8, 1.25, 2.0):
            assert law(np.array(n * factor), np.array(d / factor)) > law(np.array(n), np.array(d))
    assert frontier.loss.mean == pytest.approx(law(frontier.n_params, frontier.tokens), rel=1e-3)
    assert np.all(frontier.n_lower <= frontier.n_params) and np.all(frontier.n_params <= frontier.n_upper)


def test_the_allocation_interval_covers_the_true_optimum() -> None:
    """Delta-method intervals on log N*: over 60 simulated grids the 90 % interval at 1e22 FLOPs (100×
    past the grid) covers the true N* about 90 % of the time (a wrong gradient misses far more)."""
    rng = np.random.default_rng(1)
    true_n, true_d = true_optimum(1e22)
    covered_n = covered_d = 0
    for _ in range(60):
        x, y, seeds = grid(rng)
        frontier = compute_optimal(predictor.fit(x, y, law="chinchilla", seeds=seeds), 1e22)
        covered_n += frontier.n_lower[0] <= true_n <= frontier.n_upper[0]
        covered_d += frontier.tokens_lower[0] <= true_d <= frontier.tokens_upper[0]
    assert covered_n / 60 >= 0.75 and covered_d / 60 >= 0.75
    assert covered_n / 60 <= 1.0


def test_an_allocation_at_a_ratio_spends_the_budget() -> None:
    n, d = at_ratio([6e20, 6e22], 20.0)
    assert d / n == pytest.approx([20.0, 20.0]) and compute_of(n, d) == pytest.approx([6e20, 6e22])
    with pytest.raises(ValueError, match="tokens_per_parameter must be positive"):
        at_ratio(1e20, 0.0)
    with pytest.raises(ValueError, match="compute must be finite and positive"):
        at_ratio(-1.0, 20.0)


def test_a_one_column_fit_has_no_frontier() -> None:
    fit = predictor.fit(np.geomspace(1e6, 1e8, 6), 2 + 50 * np.geomspace(1e6, 1e8, 6) ** -0.3)
    with pytest.raises(ValueError, match="needs an \\(N, D\\) fit"):
        compute_optimal(fit, 1e20)
