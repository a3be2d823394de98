"""`fit`: the one entry point that turns (x, loss) points into a FitResult.

The method follows Hoffmann et al. 2022 (Chinchilla, Approach 3) as replicated by Besiroglu et al.
2024 ("Chinchilla Scaling: A replication attempt", epoch-research/analyzing-chinchilla): the law is
fitted to log losses with a Huber loss (δ = 1e-3) from many starts, and the uncertainty comes from a
bootstrap. Three changes make it fast without changing the optimum: starts are placed by variable
projection over an exponent grid rather than a blind 4,500-point grid, derivatives are analytic
(predictor.laws), and the best starts are polished together by a batched Levenberg-Marquardt
instead of one L-BFGS-B call each (predictor.solver). bench/fit_speed.py checks the optimum against
Epoch's brute force, side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from predictor.bootstrap import SCHEMES, Draws, Groups, bootstrap, noise_scale
from predictor.laws import Array, Law, Scales
from predictor.result import FitResult
from predictor.solver import fit_point
from predictor.validation import check_data, check_law, check_options

# Internal parameters within this distance of a bound (log-coefficient or exponent units) count as
# "at bound": the data did not pin them, and their standard error means nothing.
BOUND_TOLERANCE = 1e-3
# Condition number of the parameter correlation matrix above which the fit warns. E, A and alpha of
# a saturating power law over one decade of N are routinely correlated at |r| ≈ 0.99 (condition
# ~1e3–1e5); beyond 1e8 the parameters are interchangeable and only the curve over the data is known.
ILL_CONDITIONED = 1e8
# Below this share of converged bootstrap refits the intervals are suspect.
MIN_CONVERGED = 0.9


def fit(
    x: Any,
    y: Any,
    law: str = "mu_scaling",
    *,
    weights: Any = None,
    loss: str = "huber",
    delta: float = 1e-3,
    n_bootstrap: int = 1000,
    seed: int = 0,
    bootstrap_scheme: str = "residual",
) -> FitResult:
    """Fit `law` to losses y at x; bootstrap `n_bootstrap` resamples for intervals.

    x is a 1-D array of N for one-column laws (repeated values are replicate seeds of one width) and
    an (n, 2) array of (N, D) for ``chinchilla``. ``loss="lsq"`` fits plain least squares on log
    residuals instead of the Huber loss. ``bootstrap_scheme`` is ``"residual"`` (fixed design, the
    default for short proxy ladders) or ``"cases"`` (as Epoch did); see predictor.bootstrap.
    Raises ValueError, naming the fix, for input that cannot be fitted.
    """
    spec = check_law(law)
    check_options(loss, delta, n_bootstrap)
    if bootstrap_scheme not in SCHEMES:
        raise ValueError(f"unknown bootstrap_scheme {bootstrap_scheme!r}: choose one of {', '.join(SCHEMES)}")
    x_arr, y_arr, w = check_data(spec, x, y, weights)

    # Work in units of the data's geometric means (see predictor.laws): well-conditioned and unit-free.
    raw_log_x, raw_log_y = np.log(x_arr), np.log(y_arr)
    scales = Scales(log_x=tuple(float(v) for v in raw_log_x.mean(axis=0)), log_y=float(raw_log_y.mean()))
    log_x = raw_log_x - np.asarray(scales.log_x)
    log_y = raw_log_y - scales.log_y

    point = fit_point(spec, log_x, log_y, w, loss, delta)
    theta = point.theta
    natural = spec.to_natural(theta, scales)
    fitted_log = spec.log_value(theta, log_x)
    log_resid = log_y - fitted_log
    fitted = np.exp(fitted_log + scales.log_y)

    n, p = len(y_arr), spec.n_params
    chisqr = float(np.sum(w * log_resid**2))
    # lmfit's statistics: -2 log L of a Gaussian with the ML variance, floored so a perfect fit is finite.
    neg2_log_like = n * np.log(max(chisqr, 1e-250) / n)
    mean_y = np.average(y_arr, weights=w)
    ss_tot = float(np.sum(w * (y_arr - mean_y) ** 2))
    r2 = 1.0 - float(np.sum(w * (y_arr - fitted) ** 2)) / ss_tot if ss_tot > 0 else float("nan")

    low, high = np.array(spec.bounds()).T
    at_bound = (theta - low < BOUND_TOLERANCE) | (high - theta < BOUND_TOLERANCE)
    gn_cov, condition = _gauss_newton_covariance(spec, theta, log_x, log_resid, w, at_bound)
    nat_jac = spec.natural_jacobian(theta, scales)
    covariance = nat_jac @ gn_cov @ nat_jac.T
    groups = Groups.of(x_arr)

    draws: Draws | None = None
    if n_bootstrap > 0:
        draws = bootstrap(spec, theta, log_x, log_y, w, loss, delta, bootstrap_scheme, n_bootstrap, seed)
        boot_natural = spec.to_natural(draws.theta, scales)
        usable = boot_natural[draws.converged] if draws.converged.sum() > p else boot_natural
        covariance = np.atleast_2d(np.cov(usable, rowvar=False))
        sigma, dof = draws.sigma, draws.dof
    else:
        boot_natural = np.empty((0, p))
        sigma, dof = noise_scale(groups, log_resid, p)

    names = spec.param_names
    stderr: dict[str, float | None] = {}
    for i, name in enumerate(names):
        var = covariance[i, i]
        usable_err = np.isfinite(var) and var >= 0 and not (draws is None and at_bound[i])
        stderr[name] = float(np.sqrt(var)) if usable_err else None

    result = FitResult(
        law=spec.name,
        params={name: float(v) for name, v in zip(names, natural, strict=True)},
        stderr=stderr,
        covariance=covariance,
        residuals=y_arr - fitted,
        r2=r2,
        chisqr=chisqr,
        aic=float(neg2_log_like + 2 * p),
        bic=float(neg2_log_like + np.log(n) * p),
        success=point.success,
        message=point.message,
        at_bound={name: bool(b) for name, b in zip(names, at_bound, strict=True)},
        n_points=n,
        n_groups=groups.count,
        x_range=(float(x_arr[:, 0].min()), float(x_arr[:, 0].max())),
        x=x_arr[:, 0].copy() if x_arr.shape[1] == 1 else x_arr,
        y=y_arr,
        loss=loss,
        delta=float(delta),
        objective=point.objective,
        condition_number=condition,
        stderr_method="bootstrap" if draws is not None else "gauss-newton",
        bootstrap_scheme=bootstrap_scheme,
        bootstrap_params=boot_natural,
        bootstrap_spread=draws.spread if draws is not None else np.empty(0),
        bootstrap_noise=draws.noise if draws is not None else np.empty(0),
        bootstrap_converged=float(draws.converged.mean()) if draws is not None else float("nan"),
        noise_sigma=float(sigma),
        noise_dof=int(dof),
        n_starts=point.n_starts,
        n_polished=point.n_polished,
        n_iterations=point.n_iterations,
        seed=int(seed),
    )
    result.warnings = _fit_warnings(result, spec)
    return result


def _gauss_newton_covariance(
    law: Law, theta: Array, log_x: Array, log_resid: Array, weights: Array, at_bound: NDArray[np.bool_]
) -> tuple[Array, float]:
    """Covariance of the internal parameters, s²(JᵀWJ)⁻¹ over the free ones, and its condition number.

    The least-squares form is used for the Huber fit too: with δ far below the noise the Huber
    curvature vanishes at most points, and the sandwich estimator degenerates; the bootstrap, not
    this, is the reported uncertainty whenever it runs. Parameters at a bound get zero variance.
    """
    p = law.n_params
    free = ~at_bound
    cov = np.zeros((p, p))
    if not free.any():
        return cov, float("inf")
    _, jac = law.log_value_and_jacobian(theta, log_x)  # (n, p)
    info = jac[:, free].T @ (jac[:, free] * weights[:, None])
    scale = np.sqrt(np.diag(info))
    if np.any(scale == 0):
        cov[np.ix_(free, free)] = np.nan
        return cov, float("inf")
    condition = float(np.linalg.cond(info / np.outer(scale, scale)))
    # s² scales with the weights and (JᵀWJ)⁻¹ inversely, so only relative weights matter.
    s2 = float(np.sum(weights * log_resid**2)) / max(len(log_resid) - p, 1)
    cov[np.ix_(free, free)] = s2 * np.linalg.pinv(info)
    return cov, condition


def _fit_warnings(result: FitResult, law: Law) -> list[str]:
    """Diagnostics that apply to every prediction from this fit."""
    out = []
    if not result.success:
        out.append(f"the optimiser did not converge ({result.message}): check the data for outliers")
    for name, flag in result.at_bound.items():
        if flag:
            hint = " (try law='power' when the data show no floor)" if name == "E" else ""
            out.append(
                f"{name} = {result.params[name]:.3g} is at its bound: the data do not pin it down{hint}"
            )
    if result.condition_number > ILL_CONDITIONED:
        out.append(
            f"poorly conditioned fit (condition number {result.condition_number:.2g}): the parameters "
            f"trade off against each other; widen the range of {law.columns[0]}"
        )
    spare = result.n_groups - law.n_params
    if spare < 2:
        out.append(
            f"only {result.n_groups} distinct {law.columns[0]} for {law.n_params} parameters: "
            "the interval rests on very few degrees of freedom; add proxy widths"
        )
    if np.isfinite(result.bootstrap_converged) and result.bootstrap_converged < MIN_CONVERGED:
        out.append(
            f"only {result.bootstrap_converged:.0%} of bootstrap refits converged: intervals are rough"
        )
    return out
