"""The Kaplan et al. 2020 form L = (A·N^(−α) + B·D^(−β))^γ: its gradient and units are right, a fit
recovers a known surface, it fits an interaction the additive law misses, and its frontier is the
minimiser of the law on each iso-FLOP line."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import predictor
from predictor.frontier import compute_of, compute_optimal
from predictor.laws import LAWS, Scales

LAW = LAWS["kaplan"]
# Kaplan et al. 2020's Eq. (1.5) fit in this parametrisation: α = α_N/α_D, A = N_c^α, β = 1, B = D_c.
TRUTH = {"A": 8.8e13 ** (0.076 / 0.095), "B": 5.4e13, "alpha": 0.076 / 0.095, "beta": 1.0, "gamma": 0.095}


def surface(n: np.ndarray, d: np.ndarray, p: dict[str, float] = TRUTH) -> np.ndarray:
    return np.asarray((p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]) ** p["gamma"])


def grid(rng: np.random.Generator, sd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(1e6, 1e8, 5), np.geomspace(1e8, 1e10, 4))
    n, d = np.repeat(n.ravel(), 2), np.repeat(d.ravel(), 2)
    seeds = np.tile([0, 1], len(n) // 2)
    return np.column_stack([n, d]), surface(n, d) * np.exp(sd * rng.standard_normal(len(n))), seeds


def central_differences(f: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, step: float) -> np.ndarray:
    """d f / d theta by central differences, one column per parameter."""
    columns = [(f(theta + e * step) - f(theta - e * step)) / (2 * step) for e in np.eye(len(theta))]
    return np.stack(columns, axis=-1)


def test_parameters_in_order_and_the_analytic_jacobian_matches_finite_differences() -> None:
    assert LAW.param_names == ("A", "B", "alpha", "beta", "gamma")
    rng = np.random.default_rng(0)
    theta = np.array([0.3, -0.2, 0.7, 1.1, 0.4])
    log_x = rng.normal(size=(9, 2))
    _, jac = LAW.log_value_and_jacobian(theta, log_x)
    numeric = central_differences(lambda t: LAW.log_value(t, log_x), theta, 1e-6)
    assert jac == pytest.approx(numeric, abs=1e-8)


def test_normalised_and_raw_units_give_the_same_law() -> None:
    """The fit works in units of the data's geometric means; the loss's scale enters each inner term
    as log ȳ / γ, and the natural parameters' Jacobian (for standard errors) follows it."""
    theta = np.array([0.3, -0.2, 0.7, 1.1, 0.4])
    scales = Scales(log_x=(13.0, 20.0), log_y=0.7)
    natural = LAW.to_natural(theta, scales)
    assert LAW.to_internal(natural, scales) == pytest.approx(theta, abs=1e-12)
    log_x = np.array([[0.5, -1.0], [-2.0, 0.3]])
    raw = LAW.predict(natural, np.exp(log_x + np.array(scales.log_x)))
    assert np.log(raw) == pytest.approx(LAW.log_value(theta, log_x) + scales.log_y, abs=1e-12)
    jac = LAW.natural_jacobian(theta, scales)
    numeric = central_differences(lambda t: LAW.to_natural(t, scales), theta, 1e-7)
    assert jac == pytest.approx(numeric, rel=1e-5)


def test_a_fit_recovers_kaplans_surface() -> None:
    x, y, seeds = grid(np.random.default_rng(1), sd=0.002)
    fit = predictor.fit(x, y, law="kaplan", seeds=seeds)
    assert fit.success
    assert fit.params["gamma"] == pytest.approx(TRUTH["gamma"], rel=0.1)
    assert fit.params["alpha"] / fit.params["beta"] == pytest.approx(TRUTH["alpha"], rel=0.1)
    # Extrapolated 10× in both N and D, the fitted law stays within 1 % of the truth.
    predicted = fit.predict([1e9, 1e11]).mean
    assert float(predicted) == pytest.approx(float(surface(np.array(1e9), np.array(1e11))), rel=0.01)


def test_kaplan_fits_an_interaction_that_the_additive_law_misses() -> None:
    """A surface whose N effect shrinks at small D: the additive law's lack-of-fit test rejects it,
    Kaplan's form does not, and only Kaplan's recovers the width gap at the largest D."""
    x, y, seeds = grid(np.random.default_rng(2), sd=0.003)
    kaplan = predictor.fit(x, y, law="kaplan", seeds=seeds)
    chinchilla = predictor.fit(x, y, law="chinchilla", seeds=seeds)
    assert chinchilla.noise.lack_of_fit_p is not None and chinchilla.noise.lack_of_fit_p < 0.01
    assert any("does not fit the points" in w for w in chinchilla.warnings)
    assert kaplan.noise.lack_of_fit_p is not None and kaplan.noise.lack_of_fit_p > 0.01
    assert kaplan.chisqr < chinchilla.chisqr / 5


def test_the_frontier_minimises_kaplans_law_on_each_iso_flop_line() -> None:
    x, y, seeds = grid(np.random.default_rng(3), sd=1e-6)
    fit = predictor.fit(x, y, law="kaplan", seeds=seeds)
    budgets = np.array([1e19, 1e21])
    frontier = compute_optimal(fit, budgets)
    assert compute_of(frontier.n_params, frontier.tokens) == pytest.approx(budgets)
    for n, d in zip(frontier.n_params, frontier.tokens, strict=True):
        for factor in (0.5, 0.8, 1.25, 2.0):
            assert surface(np.array(n * factor), np.array(d / factor)) > surface(np.array(n), np.array(d))
    assert np.all(frontier.n_lower <= frontier.n_params) and np.all(frontier.n_params <= frontier.n_upper)
    with pytest.raises(ValueError, match=r"needs an \(N, D\) fit \(chinchilla or kaplan\), not mu_scaling"):
        compute_optimal(predictor.fit(np.geomspace(1e6, 1e9, 6), np.linspace(3, 2, 6)), 1e20)
