"""Does shape matter at fixed N? A nested test of L(N) against L(N) with an aspect-ratio term.

Kaplan et al. 2020 (§3.1, Fig. 5) found the loss of a transformer depends on its shape (width / depth)
only weakly at fixed non-embedding N, a few per cent across a wide range of aspect ratios; a ladder
over a (width, depth) grid can measure that for the architecture at hand. The reduced model is the
ladder's own law, log L = log L(N); the full model adds γ per doubling of the aspect ratio:

    log L = log L(N) + γ · (z − z̄),   z = log2(width / depth),  z̄ the ladder's mean z

both fitted by least squares on log loss (the way predictor.fit fits). The extra-sum-of-squares F test
(one extra parameter; e.g. Seber & Wild 2003, "Nonlinear Regression", §5.3) says whether the term is
needed. The term is testable only when shape is not a function of N alone: a grid with at least two
widths and two depths. A ladder over width at one depth, over depth at one width, or along one aspect
ratio confounds shape with N, so its L(N) already carries the shape it was built with (the test then
reports "not testable" and predictions hold for that ladder's shapes).

When the term is needed, predictions use the full model: the mean at (N, z) and a delta-method
interval over (θ, γ) with the full fit's residual variance, plus the reduced fit's seed-noise
components (predictor.noise) for "run" intervals, exactly as FitResult.predict adds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from predictor.laws import Array, Scales
from predictor.prediction import Prediction, check_question, satterthwaite
from predictor.result import LOG_LOSS_CAP, FitResult

SIGNIFICANCE = 0.05  # the F test's level: the term is "needed" below it


@dataclass(frozen=True)
class ShapeTest:
    """The test's outcome, and the full model when it was fitted."""

    testable: bool
    needed: bool
    reason: str
    residuals_by_depth: dict[int, float]  # mean log residual of the L(N) fit per depth (≈ relative)
    runs_by_depth: dict[int, int]
    gamma: float | None = None  # Δ log L per doubling of width / depth
    gamma_lower: float | None = None
    gamma_upper: float | None = None
    f_statistic: float | None = None
    p_value: float | None = None
    dof: int | None = None  # residual degrees of freedom of the full model
    z_mean: float | None = None  # the ladder's mean log2 aspect ratio (the term is 0 there)
    # The full model, internal coordinates (predictor.laws) with its data scales and covariance.
    theta: Array | None = None
    covariance: Array | None = None
    scales: Scales | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "testable": self.testable,
            "needed": self.needed,
            "reason": self.reason,
            "residuals_by_depth": {str(k): v for k, v in self.residuals_by_depth.items()},
            "runs_by_depth": {str(k): v for k, v in self.runs_by_depth.items()},
            "gamma": self.gamma,
            "gamma_lower": self.gamma_lower,
            "gamma_upper": self.gamma_upper,
            "f_statistic": self.f_statistic,
            "p_value": self.p_value,
            "dof": self.dof,
            "reference_aspect_ratio": None if self.z_mean is None else float(2**self.z_mean),
        }


def shape_test(fit: FitResult, widths: Any, depths: Any, level: float = 0.9) -> ShapeTest:
    """Test whether `fit` (a one-column law in N, its points in order) needs an aspect-ratio term, given
    each point's width and depth. `level` is the coverage of γ's interval."""
    law = fit.law_form
    if len(law.columns) != 1:
        raise ValueError(f"the shape test needs a law in N alone, not {fit.law!r}")
    w = np.asarray(widths, dtype=float)
    d = np.asarray(depths, dtype=int)
    if w.shape != fit.y.shape or d.shape != fit.y.shape:
        raise ValueError(f"give one width and one depth per fitted point ({len(fit.y)})")
    log_resid = fit.log_residuals
    by_depth = {int(k): float(np.mean(log_resid[d == k])) for k in np.unique(d)}
    counts = {int(k): int(np.sum(d == k)) for k in np.unique(d)}
    z = np.log2(w / d)
    n, p = len(fit.y), law.n_params
    if len(np.unique(w)) < 2 or len(np.unique(d)) < 2 or len(np.unique(z)) < 2:
        return ShapeTest(
            False,
            False,
            "not testable: the ladder's shape varies with N alone (one width, one depth or one aspect "
            "ratio); train a (width, depth) grid to test whether shape matters",
            by_depth,
            counts,
        )
    if n - p - 1 < 1:
        return ShapeTest(
            False, False, f"not testable: {n} runs leave no dof for {p + 1} parameters", by_depth, counts
        )
    log_n = np.log(fit.x.reshape(-1))
    scales = Scales(log_x=(float(log_n.mean()),), log_y=float(np.log(fit.y).mean()))
    log_x = (log_n - scales.log_x[0])[:, None]
    log_y = np.log(fit.y) - scales.log_y
    sw = np.sqrt(fit.weights)
    z_mean = float(z.mean())
    dz = z - z_mean
    start = law.to_internal(fit.param_array, scales)
    low, high = np.array(law.bounds()).T
    start = np.clip(start, low + 1e-9, high - 1e-9)

    def reduced(theta: Array) -> tuple[Array, Array]:
        value, jac = law.log_value_and_jacobian(theta, log_x)
        return sw * (value - log_y), sw[:, None] * jac

    def full(params: Array) -> tuple[Array, Array]:
        value, jac = law.log_value_and_jacobian(params[:-1], log_x)
        return sw * (value + params[-1] * dz - log_y), sw[:, None] * np.column_stack([jac, dz])

    fit_r = optimize.least_squares(
        lambda t: reduced(t)[0], start, jac=lambda t: reduced(t)[1], bounds=(low, high), method="trf"
    )
    fit_f = optimize.least_squares(
        lambda t: full(t)[0],
        np.append(fit_r.x, 0.0),
        jac=lambda t: full(t)[1],
        bounds=(np.append(low, -np.inf), np.append(high, np.inf)),
        method="trf",
    )
    rss_r, rss_f = float(np.sum(fit_r.fun**2)), float(np.sum(fit_f.fun**2))
    dof = n - p - 1
    s2 = rss_f / dof
    f_stat = max(0.0, (rss_r - rss_f) / s2) if s2 > 0 else float("inf")
    p_value = float(stats.f.sf(f_stat, 1, dof))
    jac = full(fit_f.x)[1]
    covariance = np.asarray(s2 * np.linalg.pinv(jac.T @ jac), dtype=float)
    gamma = float(fit_f.x[-1])
    half = float(stats.t.ppf(0.5 + level / 2, dof) * np.sqrt(covariance[-1, -1]))
    needed = p_value < SIGNIFICANCE
    verdict = "needed" if needed else "not needed"
    reason = (
        f"shape term {verdict}: γ {gamma:+.4f} log loss per doubling of width/depth "
        f"[{gamma - half:+.4f}, {gamma + half:+.4f}], F {f_stat:.2f} on (1, {dof}) dof, p {p_value:.3g} "
        f"(needed below {SIGNIFICANCE})"
    )
    return ShapeTest(
        True,
        needed,
        reason,
        by_depth,
        counts,
        gamma,
        gamma - half,
        gamma + half,
        f_stat,
        p_value,
        dof,
        z_mean,
        fit_f.x,
        covariance,
        scales,
    )


def predict_with_shape(
    fit: FitResult,
    test: ShapeTest,
    n_params: float,
    aspect_ratio: float,
    level: float = 0.9,
    interval: str = "expected",
    seeds: int = 1,
) -> Prediction:
    """The full model's prediction at (N, width/depth), for a test that found the term needed. The
    interval is the delta method over (θ, γ), plus the reduced fit's seed-noise components."""
    if not test.needed or test.theta is None or test.covariance is None or test.scales is None:
        raise ValueError("predict_with_shape needs a shape test that found the term needed")
    if not (n_params > 0 and aspect_ratio > 0):
        raise ValueError("n_params and aspect_ratio must be positive")
    check_question(level, interval, seeds)
    law = fit.law_form
    assert test.z_mean is not None and test.dof is not None
    log_x = np.array([[np.log(n_params) - test.scales.log_x[0]]])
    value, jac = law.log_value_and_jacobian(test.theta[:-1], log_x)
    dz = np.log2(aspect_ratio) - test.z_mean
    log_mean = value + test.theta[-1] * dz + test.scales.log_y
    gradient = np.column_stack([jac, [dz]])
    components = [(np.einsum("mp,pq,mq->m", gradient, test.covariance, gradient), float(test.dof))]
    components += fit.noise_components(np.log([n_params]), interval, seeds)
    variance = np.sum([v for v, _ in components], axis=0)
    dof = satterthwaite(components)
    half = stats.t.ppf(0.5 + level / 2.0, dof) * np.sqrt(variance)
    mean, lower, upper = (
        float(np.exp(min(float(v[0]), LOG_LOSS_CAP))) for v in (log_mean, log_mean - half, log_mean + half)
    )
    factor = n_params / fit.x_range[1]
    return Prediction(
        x=float(n_params),
        mean=mean,
        lower=lower,
        upper=upper,
        level=level,
        extrapolation_factor=factor,
        warnings=[
            *fit.query_warnings(np.array([[n_params]]), np.array([factor])),
            f"shape-corrected at width/depth {aspect_ratio:.4g} ({test.reason})",
        ],
        interval=interval,
        seeds=int(seeds),
        log_sd=float(np.sqrt(variance[0])),
        dof=float(dof[0]),
    )
