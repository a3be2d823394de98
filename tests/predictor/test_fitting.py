"""predictor.fit recovers known parameters and returns an lmfit-like FitResult."""

from __future__ import annotations

import json

import numpy as np
import pytest

import predictor
from tests.predictor.helpers import TRUE, mu_law, proxy_ladder


def test_exact_data_recovers_parameters_to_many_digits() -> None:
    n = np.geomspace(1e6, 1e9, 8)
    result = predictor.fit(n, mu_law(n), n_bootstrap=0)
    assert result.success
    for name, value in TRUE.items():
        assert result.params[name] == pytest.approx(value, rel=1e-5)
    assert result.r2 == pytest.approx(1.0)


@pytest.mark.parametrize("loss", ["huber", "lsq"])
def test_noisy_data_recovers_parameters_within_their_errors(loss: str) -> None:
    # Three seeds per width over three decades, 0.5 % noise: every parameter within 3 standard errors.
    rng = np.random.default_rng(7)
    n = np.repeat(np.geomspace(1e6, 1e9, 8), 3)
    y = mu_law(n) * np.exp(0.005 * rng.standard_normal(len(n)))
    result = predictor.fit(n, y, loss=loss, n_bootstrap=300)
    assert result.success and result.n_groups == 8 and result.n_points == 24
    for name, value in TRUE.items():
        err = result.stderr[name]
        assert err is not None and err > 0
        assert abs(result.params[name] - value) < 3 * err, (name, result.params[name], err)
    assert result.params["alpha"] == pytest.approx(TRUE["alpha"], rel=0.15)


def test_power_and_compute_laws() -> None:
    rng = np.random.default_rng(3)
    n = np.geomspace(1e6, 1e9, 10)
    y = 30.0 * n**-0.2 * np.exp(0.003 * rng.standard_normal(len(n)))
    power = predictor.fit(n, y, law="power", n_bootstrap=0)
    assert power.params["alpha"] == pytest.approx(0.2, abs=0.01)
    assert power.params["A"] == pytest.approx(30.0, rel=0.2)
    c = np.geomspace(1e17, 1e21, 8)
    compute = predictor.fit(c, 1.7 + 1e3 * c**-0.15, law="compute", n_bootstrap=0)
    assert compute.params["alpha"] == pytest.approx(0.15, rel=1e-4)
    assert list(compute.params) == ["E", "A", "alpha"]


def test_synthetic_chinchilla_surface() -> None:
    rng = np.random.default_rng(11)
    n = np.geomspace(1e7, 1e10, 8)
    d = np.geomspace(2e8, 2e11, 6)
    x = np.array([(a, b) for a in n for b in d])
    truth = 1.69 + 406.4 * x[:, 0] ** -0.34 + 410.7 * x[:, 1] ** -0.28
    result = predictor.fit(
        x, truth * np.exp(0.002 * rng.standard_normal(len(x))), law="chinchilla", n_bootstrap=0
    )
    assert result.params["E"] == pytest.approx(1.69, rel=0.05)
    assert result.params["alpha"] == pytest.approx(0.34, abs=0.03)
    assert result.params["beta"] == pytest.approx(0.28, abs=0.03)


def test_weights_move_the_fit_toward_heavy_points() -> None:
    n = np.geomspace(1e6, 1e9, 6)
    y = mu_law(n)
    y[2] *= 1.05  # one point off the curve
    light = predictor.fit(n, y, loss="lsq", weights=[1, 1, 1e-3, 1, 1, 1], n_bootstrap=0)
    heavy = predictor.fit(n, y, loss="lsq", weights=[1, 1, 1e3, 1, 1, 1], n_bootstrap=0)
    assert abs(light.residuals[2]) > abs(heavy.residuals[2])


def test_huber_resists_an_outlier_that_least_squares_follows() -> None:
    n = np.geomspace(1e6, 1e9, 9)
    y = mu_law(n) * np.exp(1e-4 * np.random.default_rng(0).standard_normal(9))
    y[4] *= 1.3  # a mislogged run
    huber = predictor.fit(n, y, n_bootstrap=0)
    lsq = predictor.fit(n, y, loss="lsq", n_bootstrap=0)
    assert abs(huber.params["alpha"] - TRUE["alpha"]) < 0.01 < abs(lsq.params["alpha"] - TRUE["alpha"])


def test_result_fields_report_and_json_round_trip() -> None:
    n, y = proxy_ladder(np.random.default_rng(1), widths=6, seeds=2)
    result = predictor.fit(n, y, n_bootstrap=200)
    assert result.law == "mu_scaling" and result.n_points == 12
    assert result.x_range == (pytest.approx(2e6), pytest.approx(1e8))
    assert result.covariance.shape == (3, 3) and result.bootstrap_params.shape == (200, 3)
    assert result.residuals.shape == (12,) and np.isfinite([result.aic, result.bic, result.r2]).all()
    assert set(result.at_bound) == {"E", "A", "alpha"} and not any(result.at_bound.values())
    report = result.report()
    for heading in ("[[Model]]", "[[Fit Statistics]]", "[[Variables]]", "[[Correlations]]", "Akaike"):
        assert heading in report
    assert "alpha:" in report and "+/-" in report

    restored = predictor.FitResult.from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert restored.params == result.params and restored.stderr == result.stderr
    a, b = result.predict(1e9), restored.predict(1e9)
    assert (a.mean, a.lower, a.upper) == (b.mean, b.lower, b.upper)
    assert np.array_equal(a.samples, b.samples)
    assert restored.report() == report


def test_fit_without_bootstrap_has_gauss_newton_errors_and_no_intervals() -> None:
    n, y = proxy_ladder(np.random.default_rng(2), widths=8)
    result = predictor.fit(n, y, n_bootstrap=0)
    assert result.stderr_method == "gauss-newton"
    assert all(v is not None and v > 0 for v in result.stderr.values())
    json.dumps(result.to_dict(), allow_nan=False)
    assert "no prediction intervals" in result.report()
    with pytest.raises(ValueError, match="n_bootstrap"):
        result.predict(1e9)


def test_a_floorless_curve_puts_E_at_its_bound_and_says_so() -> None:
    n = np.geomspace(1e6, 1e9, 8)
    result = predictor.fit(n, 30.0 * n**-0.2, n_bootstrap=0)
    assert result.at_bound["E"]
    assert any("E =" in w and "law='power'" in w for w in result.warnings)
    assert result.stderr["E"] is None


@pytest.mark.parametrize("law", list(predictor.LAWS))
def test_analytic_jacobian_matches_finite_differences(law: str) -> None:
    spec = predictor.LAWS[law]
    rng = np.random.default_rng(0)
    log_x = rng.normal(size=(7, len(spec.columns)))
    theta = rng.uniform(0.1, 0.8, size=spec.n_params)
    _, jac = spec.log_value_and_jacobian(theta, log_x)
    step = 1e-6
    for k in range(spec.n_params):
        bump = np.eye(spec.n_params)[k] * step
        numeric = (spec.log_value(theta + bump, log_x) - spec.log_value(theta - bump, log_x)) / (2 * step)
        np.testing.assert_allclose(jac[:, k], numeric, rtol=1e-6, atol=1e-8)
