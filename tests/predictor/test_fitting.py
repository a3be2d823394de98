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
    result = predictor.fit(n, y, loss=loss)
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
    huber = predictor.fit(n, y, loss="huber")  # δ = 1.345 × the residuals' normalised MAD
    fixed = predictor.fit(n, y, loss="huber", delta=1e-3)
    lsq = predictor.fit(n, y)
    assert huber.delta < 0.01 < fixed.delta * 100 and lsq.loss == "lsq" and lsq.delta == 0
    for robust in (huber, fixed):
        assert abs(robust.params["alpha"] - TRUE["alpha"]) < 0.01 < abs(lsq.params["alpha"] - TRUE["alpha"])


def test_result_fields_report_and_json_round_trip() -> None:
    n, y = proxy_ladder(np.random.default_rng(1), widths=6, seeds=2)
    result = predictor.fit(n, y, seeds=np.tile([3, 7], 6))
    assert result.law == "mu_scaling" and result.n_points == 12
    assert result.x_range == (pytest.approx(2e6), pytest.approx(1e8))
    assert result.covariance.shape == (3, 3) and result.seeds is not None and set(result.seeds) == {3, 7}
    assert result.residuals.shape == (12,) and np.isfinite([result.aic, result.bic, result.r2]).all()
    assert set(result.at_bound) == {"E", "A", "alpha"} and not any(result.at_bound.values())
    report = result.report()
    for heading in ("[[Model]]", "[[Fit Statistics]]", "[[Variables]]", "[[Correlations]]", "Akaike"):
        assert heading in report
    assert "alpha:" in report and "+/-" in report

    restored = predictor.FitResult.from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert restored.params == result.params and restored.stderr == result.stderr
    assert restored.noise == result.noise
    for question in ("expected", "run"):
        a, b = result.predict(1e9, interval=question), restored.predict(1e9, interval=question)
        assert (a.mean, a.lower, a.upper) == (b.mean, b.lower, b.upper)
    assert restored.report() == report


def test_standard_errors_come_from_the_noise_model_unless_bootstrapped() -> None:
    n, y = proxy_ladder(np.random.default_rng(2), widths=8, seeds=3)
    result = predictor.fit(n, y)
    assert result.stderr_method == "gauss-newton" and len(result.bootstrap_params) == 0
    assert all(v is not None and v > 0 for v in result.stderr.values())
    # The covariance is scaled by the replicates' pure error, with its degrees of freedom.
    assert result.sigma_dof == 8 * 2 and result.sigma2 == pytest.approx(result.noise.pure_error)
    json.dumps(result.to_dict(), allow_nan=False)
    assert "pure error σ" in result.report() and "on 16 dof" in result.report()
    booted = predictor.fit(n, y, n_bootstrap=200)
    assert booted.stderr_method == "bootstrap" and booted.bootstrap_params.shape == (200, 3)
    # The residual bootstrap resamples the widths' mean residuals (G − p = 5 dof here): same order.
    assert 1 / 3 < booted.stderr["alpha"] / result.stderr["alpha"] < 3


def test_the_noise_model_tests_the_law_and_the_seeds() -> None:
    rng = np.random.default_rng(6)
    n = np.repeat(np.geomspace(2e6, 1e8, 6), 4)
    labels = np.tile(np.arange(4), 6)
    shift = np.array([0.02, -0.02, 0.01, -0.01])  # each seed moves its whole ladder
    y = mu_law(n) * np.exp(shift[labels] + 0.003 * rng.standard_normal(len(n)))
    noise = predictor.fit(n, y, seeds=labels).noise
    assert noise.n_seeds == 4 and noise.seed_p is not None and noise.seed_p < 0.001
    assert np.sqrt(noise.seed_effect) == pytest.approx(np.std(shift, ddof=1), rel=0.3)
    assert np.sqrt(noise.shape) == pytest.approx(0.003, rel=0.35) and noise.shape_dof == 15
    assert noise.lack_of_fit_p is not None and noise.lack_of_fit_p > 0.01
    # A law that cannot bend to the data fails the lack-of-fit test, and the fit says so.
    kinked = np.where(n > 2e7, y * 1.03, y)
    misfit = predictor.fit(n, kinked, seeds=labels)
    assert misfit.noise.lack_of_fit_p is not None and misfit.noise.lack_of_fit_p < 0.01
    assert any("does not fit the points beyond seed noise" in w for w in misfit.warnings)


def test_noise_that_grows_with_n_is_modelled_only_on_evidence() -> None:
    """σ(N) is chosen at p < 0.01: rarely for a constant σ, almost always for σ ∝ N^0.5 over 50× N."""
    n = np.repeat(np.geomspace(2e6, 1e8, 8), 6)
    sd = 0.002 * (n / 2e6) ** 0.5  # σ ∝ N^0.5: 0.2 % to 1.4 %
    steady = growing = 0
    for trial in range(60):
        rng = np.random.default_rng(trial)
        constant = predictor.fit(n, mu_law(n) * np.exp(0.004 * rng.standard_normal(len(n))))
        steady += constant.noise.model == "power"
        if trial < 20:
            fit = predictor.fit(n, mu_law(n) * np.exp(sd * rng.standard_normal(len(n))))
            growing += fit.noise.model == "power"
    assert steady <= 3 and growing >= 18, (steady, growing)
    assert fit.noise.log_var_slope == pytest.approx(1.0, abs=0.5)
    assert "σ(N) ∝ N^" in fit.report()


def test_a_floorless_curve_puts_E_at_its_bound_and_says_so() -> None:
    n = np.geomspace(1e6, 1e9, 8)
    result = predictor.fit(n, 30.0 * n**-0.2, n_bootstrap=0)
    assert result.at_bound["E"]
    assert any("E =" in w and "law='power'" in w for w in result.warnings)
    assert result.stderr["E"] is None


@pytest.mark.parametrize("law", list(predictor.LAWS))
def test_analytic_jacobian_matches_finite_differences(law: str) -> None:
    spec = predictor.LAWS[law]
    if spec.fixed_outer:  # γ is given, not fitted: any bound value will do
        spec = spec.with_outer(0.3)
    rng = np.random.default_rng(0)
    log_x = rng.normal(size=(7, len(spec.columns)))
    theta = rng.uniform(0.1, 0.8, size=spec.n_params)
    _, jac = spec.log_value_and_jacobian(theta, log_x)
    step = 1e-6
    for k in range(spec.n_params):
        bump = np.eye(spec.n_params)[k] * step
        numeric = (spec.log_value(theta + bump, log_x) - spec.log_value(theta - bump, log_x)) / (2 * step)
        np.testing.assert_allclose(jac[:, k], numeric, rtol=1e-6, atol=1e-8)
