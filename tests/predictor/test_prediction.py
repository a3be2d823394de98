"""Predictions: the two questions (the expected loss, what new runs show), shapes, monotonicity, warnings,
and calibration of both intervals by simulation."""

from __future__ import annotations

import numpy as np
import pytest

import predictor
from tests.predictor.helpers import mu_law, proxy_ladder


@pytest.fixture(scope="module")
def ladder_fit() -> predictor.FitResult:
    n, y = proxy_ladder(np.random.default_rng(5), widths=6, seeds=2)
    return predictor.fit(n, y, seeds=np.tile([0, 1], 6))


def test_scalar_query_gives_scalar_fields(ladder_fit: predictor.FitResult) -> None:
    pred = ladder_fit.predict(4e8, level=0.9)
    assert isinstance(pred.mean, float) and isinstance(pred.lower, float) and isinstance(pred.upper, float)
    assert pred.lower < pred.mean < pred.upper and pred.interval == "expected"
    assert pred.extrapolation_factor == pytest.approx(4.0)
    assert pred.warnings == [] and pred.dof > 1
    wider = ladder_fit.predict(4e8, level=0.99)
    assert wider.lower < pred.lower and wider.upper > pred.upper


def test_a_run_interval_adds_the_new_runs_noise_and_shrinks_with_seeds(
    ladder_fit: predictor.FitResult,
) -> None:
    expected = ladder_fit.predict(4e8)
    one = ladder_fit.predict(4e8, interval="run")
    four = ladder_fit.predict(4e8, interval="run", seeds=4)
    assert expected.mean == one.mean == four.mean  # one law; the questions differ in their spread
    assert expected.log_sd < four.log_sd < one.log_sd
    noise = ladder_fit.noise.new_run(np.log(4e8))
    assert one.log_sd**2 == pytest.approx(expected.log_sd**2 + noise)
    assert four.log_sd**2 == pytest.approx(expected.log_sd**2 + noise / 4)
    with pytest.raises(ValueError, match="interval must be one of expected, run"):
        ladder_fit.predict(4e8, interval="both")
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        ladder_fit.predict(4e8, interval="run", seeds=0)


@pytest.mark.parametrize("law", ["mu_scaling", "power", "compute"])
def test_predictions_are_monotone_in_n(law: str) -> None:
    rng = np.random.default_rng(9)
    n = np.geomspace(1e6, 1e8, 7)
    y = mu_law(n) * np.exp(0.01 * rng.standard_normal(len(n)))
    pred = predictor.fit(n, y, law=law).predict(np.geomspace(1e5, 1e12, 30))
    assert np.all(np.diff(np.asarray(pred.mean)) <= 0)
    assert np.asarray(pred.lower).shape == (30,) and np.all(np.asarray(pred.lower) < np.asarray(pred.upper))


def test_far_extrapolation_warns(ladder_fit: predictor.FitResult) -> None:
    assert ladder_fit.predict(2e9).warnings  # 20× is a nudge to add proxies …
    far = ladder_fit.predict(1e11)  # … 1,000× is a guess, and says so
    assert any("1000×" in w and "far beyond the data" in w for w in far.warnings)
    assert any("below the smallest" in w for w in ladder_fit.predict(1e5).warnings)


def test_fit_level_warnings_reach_every_prediction() -> None:
    n, y = proxy_ladder(np.random.default_rng(4), widths=4)
    result = predictor.fit(n, y)
    assert any("only 4 distinct N for 3 parameters" in w for w in result.warnings)
    assert any("no seed replicates" in w for w in result.warnings)
    assert set(result.warnings) <= set(result.predict(2e8).warnings)


@pytest.mark.parametrize(("seed_sd", "seeds"), [(0.0, 4), (0.005, 4), (0.0, 2)])
def test_both_intervals_cover_at_their_level(seed_sd: float, seeds: int) -> None:
    """Calibration by simulation (the accuracy bench's design: 6 widths, σ 0.8 %, 7× extrapolation;
    with and without a seed effect shared across widths): 300 ladders, 90 % intervals must cover the
    expected loss, and one new run, 85–95 % of the time (a binomial ±3 SD band around 0.9)."""
    rng = np.random.default_rng(seeds * 100 + int(seed_sd * 1e4))
    n = np.repeat(np.geomspace(1536, 55296, 6), seeds)
    labels = np.tile(np.arange(seeds), 6)
    query = 55296 * 7.1
    truth = float(mu_law(query))
    hits = {"expected": 0, "run": 0}
    trials = 300
    for _ in range(trials):
        shift = rng.normal(0.0, seed_sd, seeds)
        y = mu_law(n) * np.exp(shift[labels] + 0.008 * rng.standard_normal(len(n)))
        result = predictor.fit(n, y, seeds=labels)
        expected = result.predict(query, interval="expected")
        run = result.predict(query, interval="run")
        new_run = truth * np.exp(rng.normal(0.0, seed_sd) + 0.008 * rng.standard_normal())
        hits["expected"] += expected.lower <= truth <= expected.upper
        hits["run"] += run.lower <= new_run <= run.upper
    for question, count in hits.items():
        assert 0.85 <= count / trials <= 0.95, (question, count / trials)


def test_prediction_to_dict(ladder_fit: predictor.FitResult) -> None:
    pred = ladder_fit.predict([4e8, 1e9], interval="run", seeds=2)
    d = pred.to_dict()
    assert d["interval"] == "run" and d["seeds"] == 2 and len(d["upper"]) == 2 and len(d["dof"]) == 2
    assert d["upper"] == [float(v) for v in np.asarray(pred.upper)]
