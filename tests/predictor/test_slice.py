"""The fixed-D slice of the kaplan law, (A·N^(−α) + C)^γ with γ given by an (N, D) fit: its gradient,
that it fits a known slice, that it is the E + A·N^(−α) fit of L^(1/γ), that γ's own uncertainty enters
the intervals through the right sensitivity, that it survives storage, and that a missing or misplaced
γ is refused with the fix."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from predictor.laws import LAWS, Scales
from tests.predictor.test_kaplan import central_differences

LAW = LAWS["kaplan_slice"]
GAMMA = 0.27
TRUTH = {"A": 50.0, "C": 3.0, "alpha": 0.5}


def slice_of(n: np.ndarray | float, gamma: float = GAMMA) -> np.ndarray:
    return np.asarray((TRUTH["A"] * np.asarray(n) ** -TRUTH["alpha"] + TRUTH["C"]) ** gamma)


def ladder(rng: np.random.Generator, sd: float, seeds: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.repeat(np.geomspace(1e5, 3e6, 6), seeds)
    labels = np.tile(np.arange(seeds), 6)
    return n, slice_of(n) * np.exp(sd * rng.standard_normal(len(n))), labels


def test_gamma_is_no_parameter_and_the_jacobian_matches_finite_differences() -> None:
    bound = LAW.with_outer(GAMMA)
    assert bound.param_names == ("A", "C", "alpha")
    theta = np.array([0.3, -0.2, 0.7])
    log_x = np.random.default_rng(0).normal(size=(7, 1))
    value, jac = bound.log_value_and_jacobian(theta, log_x)
    assert value == pytest.approx(bound.log_value(theta, log_x), abs=1e-12)
    numeric = central_differences(lambda t: bound.log_value(t, log_x), theta, 1e-6)
    assert jac == pytest.approx(numeric, abs=1e-8)
    natural = bound.to_natural(theta, Scales(log_x=(13.0,), log_y=0.7))
    assert bound.to_internal(natural, Scales(log_x=(13.0,), log_y=0.7)) == pytest.approx(theta, abs=1e-12)
    with pytest.raises(ValueError, match="with_outer"):
        LAW.log_value(theta, log_x)  # unbound: γ was never given


def test_a_fit_recovers_a_known_slice_and_predicts_it_far_out() -> None:
    n, y, seeds = ladder(np.random.default_rng(1), sd=1e-4)
    fit = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA, seeds=seeds)
    assert fit.params == pytest.approx(TRUTH, rel=0.05)
    assert fit.gamma == GAMMA and fit.law_form.outer_value == GAMMA
    assert fit.predict(1e8).mean == pytest.approx(float(slice_of(1e8)), rel=1e-3)
    assert "gamma" in fit.report() and "fixed" in fit.report()


def test_it_is_the_saturating_fit_of_the_loss_to_the_power_one_over_gamma() -> None:
    """log L = γ·log(A·N^−α + C): least squares on log L is γ² times least squares on log L^(1/γ), so
    the optimum is E + A·N^(−α)'s fitted to L^(1/γ), with C in the place of E."""
    n, y, seeds = ladder(np.random.default_rng(2), sd=0.005)
    sliced = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA, seeds=seeds)
    plain = predictor.fit(n, y ** (1 / GAMMA), "mu_scaling", seeds=seeds)
    assert sliced.params["C"] == pytest.approx(plain.params["E"], rel=1e-3)
    assert sliced.params["alpha"] == pytest.approx(plain.params["alpha"], rel=1e-2)
    assert sliced.predict(3e7).mean == pytest.approx(plain.predict(3e7).mean ** GAMMA, rel=1e-4)
    # The lack-of-fit F is a ratio of variances, so the scale 1/γ cancels.
    assert sliced.noise.lack_of_fit_f == pytest.approx(plain.noise.lack_of_fit_f, rel=1e-2)


def test_gammas_sensitivity_is_that_of_refits_at_a_shifted_gamma() -> None:
    """d log L̂(x)/dγ with A, C and alpha refitted: the analytic (implicit-function) value matches
    central differences of whole refits, near the data and far from it."""
    n, y, _ = ladder(np.random.default_rng(3), sd=1e-4, seeds=2)
    fit = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA)
    step = 1e-4
    for target in (3e6, 3e7, 3e8):
        up = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA + step).predict(target).mean
        down = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA - step).predict(target).mean
        numeric = (np.log(up) - np.log(down)) / (2 * step)
        analytic = float(fit.outer_sensitivity(np.log([[target]]))[0])
        assert analytic == pytest.approx(numeric, rel=0.05)


def test_gammas_uncertainty_widens_the_interval_by_its_own_component() -> None:
    n, y, seeds = ladder(np.random.default_rng(4), sd=0.005)
    exact = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA, seeds=seeds)
    unsure = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA, gamma_sd=0.5, gamma_dof=12, seeds=seeds)
    target = 3e8
    a, b = exact.predict(target), unsure.predict(target)
    assert b.mean == pytest.approx(a.mean, rel=1e-12)  # the point estimate does not depend on γ's sd
    added = (float(exact.outer_sensitivity(np.log([[target]]))[0]) * 0.5) ** 2
    assert float(b.log_sd) ** 2 == pytest.approx(float(a.log_sd) ** 2 + added, rel=1e-9)
    assert added > 0 and b.upper > a.upper and b.lower < a.lower


def test_a_stored_slice_fit_predicts_identically() -> None:
    n, y, seeds = ladder(np.random.default_rng(5), sd=0.005)
    fit = predictor.fit(n, y, "kaplan_slice", gamma=GAMMA, gamma_sd=0.02, gamma_dof=15, seeds=seeds)
    restored = predictor.FitResult.from_dict(fit.to_dict())
    assert (restored.gamma, restored.gamma_sd, restored.gamma_dof) == (GAMMA, 0.02, 15)
    a, b = fit.predict(1e8, interval="run"), restored.predict(1e8, interval="run")
    assert (b.mean, b.lower, b.upper) == (a.mean, a.lower, a.upper)


def test_a_backtest_and_the_holdout_check_carry_gamma() -> None:
    n, y, seeds = ladder(np.random.default_rng(6), sd=0.003)
    options = {"gamma": GAMMA, "gamma_sd": 0.02, "gamma_dof": 15}
    held = predictor.hold_out_largest(n, y, "kaplan_slice", seeds=seeds, **options)
    assert held is not None and abs(held.error) < 0.02
    bt = predictor.backtest(n, y, 1, "kaplan_slice", seeds=seeds, **options)
    assert bt.fit.gamma == GAMMA and bt.fit.gamma_sd == 0.02


@pytest.mark.parametrize(
    ("law", "options", "message"),
    [
        ("kaplan_slice", {}, "needs gamma"),
        ("kaplan_slice", {"gamma": 9.0}, r"gamma must lie in"),
        ("kaplan_slice", {"gamma": GAMMA, "gamma_sd": 0.1}, "gamma_dof"),
        ("kaplan_slice", {"gamma": GAMMA, "gamma_sd": -1.0}, "gamma_sd"),
        ("mu_scaling", {"gamma": GAMMA}, "takes no gamma"),
    ],
)
def test_a_missing_or_misplaced_gamma_is_refused_with_the_fix(
    law: str, options: dict[str, float], message: str
) -> None:
    n, y, _ = ladder(np.random.default_rng(7), sd=0.005)
    with pytest.raises(ValueError, match=message):
        predictor.fit(n, y, law, **options)  # type: ignore[arg-type]
