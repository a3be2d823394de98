"""Predictions: shapes, monotonicity, warnings, calibration of the intervals, P(best)."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from tests.predictor.helpers import mu_law, proxy_ladder


@pytest.fixture(scope="module")
def ladder_fit() -> predictor.FitResult:
    n, y = proxy_ladder(np.random.default_rng(5), widths=6, seeds=2)
    return predictor.fit(n, y)


def test_scalar_query_gives_scalar_fields(ladder_fit: predictor.FitResult) -> None:
    pred = ladder_fit.predict(4e8, level=0.9)
    assert isinstance(pred.mean, float) and isinstance(pred.lower, float) and isinstance(pred.upper, float)
    assert pred.lower < pred.mean < pred.upper
    assert pred.samples.shape == (1000,)
    assert pred.extrapolation_factor == pytest.approx(4.0)
    assert pred.warnings == []
    wider = ladder_fit.predict(4e8, level=0.99)
    assert wider.lower < pred.lower and wider.upper > pred.upper


@pytest.mark.parametrize("law", ["mu_scaling", "power", "compute"])
def test_predictions_are_monotone_in_n(law: str) -> None:
    rng = np.random.default_rng(9)
    n = np.geomspace(1e6, 1e8, 7)
    y = mu_law(n) * np.exp(0.01 * rng.standard_normal(len(n)))
    pred = predictor.fit(n, y, law=law, n_bootstrap=200).predict(np.geomspace(1e5, 1e12, 30))
    assert np.all(np.diff(np.asarray(pred.mean)) <= 0)
    assert pred.samples.shape == (200, 30)


def test_far_extrapolation_warns(ladder_fit: predictor.FitResult) -> None:
    assert ladder_fit.predict(2e9).warnings  # 20× is a nudge to add proxies …
    far = ladder_fit.predict(1e11)  # … 1,000× is a guess, and says so
    assert any("1000×" in w and "far beyond the data" in w for w in far.warnings)
    assert any("below the smallest" in w for w in ladder_fit.predict(1e5).warnings)


def test_fit_level_warnings_reach_every_prediction() -> None:
    n, y = proxy_ladder(np.random.default_rng(4), widths=4)
    result = predictor.fit(n, y, n_bootstrap=200)
    assert any("only 4 distinct N for 3 parameters" in w for w in result.warnings)
    assert set(result.warnings) <= set(result.predict(2e8).warnings)


def test_intervals_cover_the_truth_when_extrapolating() -> None:
    # 1 % multiplicative noise on a 6-width ladder; 90 % intervals at 4× and 10× the largest proxy.
    # Seeded, so deterministic; 40 trials keep it under a few seconds.
    rng = np.random.default_rng(2024)
    query = np.array([4e8, 1e9])
    covered = []
    widths = []
    for trial in range(40):
        n, y = proxy_ladder(rng, widths=6)
        pred = predictor.fit(n, y, seed=trial).predict(query, level=0.9)
        truth = mu_law(query)
        covered.append((np.asarray(pred.lower) <= truth) & (truth <= np.asarray(pred.upper)))
        widths.append((np.asarray(pred.upper) - np.asarray(pred.lower)) / truth)
    coverage = np.mean(covered, axis=0)
    assert np.all(coverage >= 0.8), coverage
    # Honest, but still useful: the median interval is narrower than ±15 % of the loss.
    assert np.median(widths) < 0.3


def test_probability_best_prefers_the_clearly_better_design() -> None:
    rng = np.random.default_rng(8)
    n, y = proxy_ladder(rng)
    good = predictor.fit(n, y * 0.95).predict(1e9)
    bad = predictor.fit(n, y, seed=1).predict(1e9)
    p_good, p_bad = predictor.probability_best([good, bad])
    assert p_good + p_bad == pytest.approx(1.0)
    assert p_good > 0.7 > p_bad
    with pytest.raises(ValueError, match="at least two"):
        predictor.probability_best([good])


def test_prediction_to_dict_round_trip(ladder_fit: predictor.FitResult) -> None:
    pred = ladder_fit.predict([4e8, 1e9])
    again = predictor.Prediction.from_dict(pred.to_dict())
    assert np.array_equal(np.asarray(again.upper), np.asarray(pred.upper))
    assert again.warnings == pred.warnings
