"""Profile-likelihood intervals (predict(method="profile")): the bounds are those of the constrained fit,
computed here the slow, obvious way."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq, minimize

import predictor
from tests.predictor.helpers import mu_law, proxy_ladder


def brute_force_bounds(fit: predictor.FitResult, target: float, level: float) -> tuple[float, float]:
    """Where min over (A, alpha) of the weighted log RSS, with E eliminated by L(target) = L*, rises by
    t²_ν σ² above the best fit's: the profile-likelihood interval by definition."""
    n, y, w = fit.x, fit.y, fit.weights

    def rss(l_star: float) -> float:
        def objective(z: np.ndarray) -> float:
            a, alpha = np.exp(z[0]), z[1]
            e = l_star - a * target**-alpha
            if e <= 0:
                return 1e6 * (1 - e)
            return float(np.sum(w * (np.log(y) - np.log(e + a * n**-alpha)) ** 2))

        starts = [
            (np.log(fit.params["A"] * s), fit.params["alpha"] * t) for s in (0.3, 1, 3) for t in (0.8, 1, 1.2)
        ]
        opts = {"xatol": 1e-10, "fatol": 1e-15, "maxiter": 20000}
        return min(minimize(objective, start, method="Nelder-Mead", options=opts).fun for start in starts)

    best = float(np.sum(w * np.log(y / (y - fit.residuals)) ** 2))
    threshold = stats.t.ppf(0.5 + level / 2, fit.sigma_dof) ** 2

    def excess(l_star: float) -> float:
        return (rss(l_star) - best) / fit.sigma2 - threshold

    center = float(fit.predict(target).mean)
    return brentq(excess, center * 0.7, center * (1 - 1e-7)), brentq(
        excess, center * (1 + 1e-7), center * 1.4
    )


@pytest.mark.parametrize("widths,seeds,factor", [(4, 1, 7.0), (4, 2, 30.0), (6, 1, 30.0)])
def test_profile_bounds_are_the_constrained_fits(widths: int, seeds: int, factor: float) -> None:
    # (4, 1): one residual dof, t = 6.3: the crossings lie far out, where the profile is most curved.
    rng = np.random.default_rng(widths)
    n, y = proxy_ladder(rng, widths=widths, seeds=seeds, noise=0.01)
    fit = predictor.fit(n, y)
    target = float(n.max() * factor)
    got = fit.predict(target, level=0.9, method="profile")  # no seed effect: the interval is the profile's
    lower, upper = brute_force_bounds(fit, target, 0.9)
    assert got.lower == pytest.approx(lower, rel=2e-4)
    assert got.upper == pytest.approx(upper, rel=2e-4)


def test_far_from_the_data_the_profile_is_lopsided_where_the_delta_method_is_not() -> None:
    # Four widths, 30×: a lower floor with a steeper decay fits the proxies almost as well as the best
    # fit, a higher floor less so; the profile sees that, the tangent does not.
    rng = np.random.default_rng(4)
    n, y = proxy_ladder(rng, widths=4, seeds=2, noise=0.01)
    fit = predictor.fit(n, y)
    target = float(n.max() * 30)
    delta = fit.predict(target, method="delta")
    prof = fit.predict(target, method="profile")
    assert np.log(delta.mean / delta.lower) == pytest.approx(np.log(delta.upper / delta.mean), rel=1e-9)
    below, above = np.log(prof.mean / prof.lower), np.log(prof.upper / prof.mean)
    assert abs(below - above) > 0.05 * (below + above)
    assert prof.mean == delta.mean  # the same fit: only the interval differs


def test_close_to_well_pinned_data_profile_and_delta_agree() -> None:
    rng = np.random.default_rng(0)
    n, y = proxy_ladder(rng, widths=8, seeds=4, noise=0.003)
    fit = predictor.fit(n, y)
    target = float(n.max() * 2)
    delta = fit.predict(target)
    prof = fit.predict(target, method="profile")
    assert prof.lower == pytest.approx(float(delta.lower), rel=5e-4)
    assert prof.upper == pytest.approx(float(delta.upper), rel=5e-4)


def test_profile_answers_both_questions_at_every_level_and_vector_queries() -> None:
    rng = np.random.default_rng(2)
    n, y = proxy_ladder(rng, widths=6, seeds=3, noise=0.008)
    seeds = np.tile(np.arange(3), 6)
    fit = predictor.fit(n, y, seeds=seeds)
    targets = n.max() * np.array([2.0, 10.0])
    widths = []
    for level in (0.5, 0.9, 0.99):
        expected = fit.predict(targets, level=level, method="profile")
        run = fit.predict(targets, level=level, interval="run", method="profile")
        assert np.all(run.lower < expected.lower) and np.all(expected.upper < run.upper)
        assert np.all(expected.lower < expected.mean) and np.all(expected.mean < expected.upper)
        widths.append(expected.upper - expected.lower)
    assert np.all(widths[0] < widths[1]) and np.all(widths[1] < widths[2])
    # Three seeds averaged: between the expected loss and one run.
    three = fit.predict(targets, interval="run", seeds=3, method="profile")
    one = fit.predict(targets, interval="run", method="profile")
    assert np.all(one.lower < three.lower) and np.all(three.upper < one.upper)
    # Profiles are kept per point, never stored with the fit.
    restored = predictor.FitResult.from_dict(fit.to_dict())
    again = restored.predict(targets, method="profile")
    np.testing.assert_allclose(again.upper, fit.predict(targets, method="profile").upper, rtol=1e-12)


def test_unknown_method_is_refused_with_the_choices() -> None:
    n = np.geomspace(1e6, 1e8, 5)
    fit = predictor.fit(n, mu_law(n))
    with pytest.raises(ValueError, match="delta, profile"):
        fit.predict(1e9, method="bayes")


def test_a_vanishing_level_gives_the_point_not_nan() -> None:
    # 0.5 + 5e-324 rounds to 0.5: the t quantile is 0 and the profile's distance too (schema fuzzing
    # found the 0/0 through POST /v1/predictions).
    rng = np.random.default_rng(3)
    n, y = proxy_ladder(rng, widths=4, seeds=1, noise=0.005)
    fit = predictor.fit(n, y)
    for interval in ("expected", "run"):
        p = fit.predict(1e10, level=5e-324, interval=interval, method="profile")
        assert p.lower == p.mean == p.upper and np.isfinite(p.mean)
