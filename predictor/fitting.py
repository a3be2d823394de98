"""`fit`: the one entry point that turns (x, loss) points into a FitResult.

The optimum is found as in Hoffmann et al. 2022 (Chinchilla, Approach 3) and Epoch's replication
(Besiroglu et al. 2024, epoch-research/analyzing-chinchilla): the law is fitted to log losses from many
starts, placed by variable projection over an exponent grid and polished together by a batched
Levenberg-Marquardt on analytic derivatives (predictor.solver, predictor.laws; bench/fit_speed.py
checks the optimum against Epoch's brute force).

The objective is least squares on log loss by default. Chinchilla's Huber loss with δ = 1e-3 is far
below the ~0.5–1 % seed noise of proxy runs, which makes it a least-absolute-deviation fit: in
simulation its prediction SD was 0.93 % against 0.74 % for least squares (issue 13). `loss="huber"`
remains, with δ = 1.345 σ̂ (Huber's 95 %-efficiency constant; σ̂ the normalised MAD of a preliminary
robust fit's residuals, which an outlier cannot inflate) unless a δ is given.

Uncertainty comes from the noise model (predictor.noise): the parameter covariance is σ²(JᵀJ)⁻¹ with
σ² the shape noise measured by the seed replicates and its degrees of freedom, inflated to the residual
mean square when the lack-of-fit test rejects the law. predict() turns it into intervals for the
expected loss and for new runs (predictor.result). A bootstrap (`n_bootstrap`) is optional and only
replaces the standard errors, as Epoch reported them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from predictor.bootstrap import SCHEMES, Draws, Groups, bootstrap
from predictor.laws import Array, Law, Scales
from predictor.noise import NoiseModel, noise_model
from predictor.result import FitResult
from predictor.solver import PointFit, fit_point
from predictor.validation import check_data, check_law, check_options, check_outer, check_seeds

# Internal parameters within this distance of a bound (log-coefficient or exponent units) count as
# "at bound": the data did not pin them, and their standard error means nothing.
BOUND_TOLERANCE = 1e-3
# Condition number of the parameter correlation matrix above which the fit warns. E, A and alpha of
# a saturating power law over one decade of N are routinely correlated at |r| ≈ 0.99 (condition
# ~1e3–1e5); beyond 1e8 the parameters are interchangeable and only the curve over the data is known.
ILL_CONDITIONED = 1e8
# Below this share of converged bootstrap refits the standard errors are suspect.
MIN_CONVERGED = 0.9
# Huber's tuning constant for 95 % efficiency under Gaussian noise (Huber 1964; Huber & Ronchetti
# 2009, §4.6): δ = 1.345 σ.
HUBER_EFFICIENCY = 1.345
MAD_TO_SIGMA = 1.4826  # σ = 1.4826 · MAD for Gaussian noise
INITIAL_DELTA = 1e-4  # the preliminary robust fit's δ: far below any seed noise, so nearly L1
LSQ_SCALE = 1.0  # the δ argument least squares passes to the solver: it only scales the objective
# The lack-of-fit test's level: below it the law misfits beyond seed noise, and the fit says so.
LACK_OF_FIT_P = 0.05


def fit(
    x: Any,
    y: Any,
    law: str = "mu_scaling",
    *,
    seeds: Any = None,
    weights: Any = None,
    loss: str = "lsq",
    delta: float | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    bootstrap_scheme: str = "residual",
    gamma: float | None = None,
    gamma_sd: float = 0.0,
    gamma_dof: int = 0,
    x_label: str | None = None,
) -> FitResult:
    """Fit `law` to losses y at x.

    x is a 1-D array of N for one-column laws (repeated values are replicate seeds of one width) and
    an (n, 2) array of (N, D) for ``chinchilla``. ``seeds`` labels each point's seed: a seed shared
    across widths is a paired replicate (predictor.noise) and pairs candidates in predictor.compare.
    ``loss`` is ``"lsq"`` (least squares on log loss) or ``"huber"`` (δ = 1.345 σ̂ unless given, σ̂ robust).
    ``n_bootstrap`` > 0 replaces the standard errors by a bootstrap's (``bootstrap_scheme``
    ``"residual"`` or ``"cases"``, see predictor.bootstrap); intervals never need it.
    ``kaplan_slice`` takes its outer power ``gamma`` from an (N, D) fit of the same architecture, with that
    fit's standard error ``gamma_sd`` and dof ``gamma_dof`` (its sigma_dof), which widen every interval.
    ``x_label`` names what a one-column x counts in warnings and the report (default the law's column
    name, N or C; e.g. "total parameters" for a law fitted in them).
    Raises ValueError, naming the fix, for input that cannot be fitted.
    """
    form = check_outer(check_law(law), gamma, gamma_sd, gamma_dof)
    check_options(loss, delta, n_bootstrap)
    if bootstrap_scheme not in SCHEMES:
        raise ValueError(f"unknown bootstrap_scheme {bootstrap_scheme!r}: choose one of {', '.join(SCHEMES)}")
    x_arr, y_arr, w = check_data(form, x, y, weights)
    seed_labels = check_seeds(seeds, len(y_arr))

    # Work in units of the data's geometric means (see predictor.laws): well-conditioned and unit-free.
    raw_log_x, raw_log_y = np.log(x_arr), np.log(y_arr)
    scales = Scales(log_x=tuple(float(v) for v in raw_log_x.mean(axis=0)), log_y=float(raw_log_y.mean()))
    log_x = raw_log_x - np.asarray(scales.log_x)
    log_y = raw_log_y - scales.log_y
    group_keys = np.unique(x_arr, axis=0, return_inverse=True)[1].reshape(-1)

    n, p = len(y_arr), form.n_params
    point, noise, fit_w, delta = _fit_with_noise(
        form, raw_log_x, log_x, log_y, w, group_keys, seed_labels, loss, delta
    )
    theta = point.theta
    natural = form.to_natural(theta, scales)
    fitted_log = form.log_value(theta, log_x)
    log_resid = log_y - fitted_log
    fitted = np.exp(fitted_log + scales.log_y)

    chisqr = float(np.sum(fit_w * log_resid**2))
    # lmfit's statistics: -2 log L of a Gaussian with the ML variance, floored so a perfect fit is finite.
    neg2_log_like = n * np.log(max(chisqr, 1e-250) / n)
    mean_y = np.average(y_arr, weights=w)
    ss_tot = float(np.sum(w * (y_arr - mean_y) ** 2))
    r2 = 1.0 - float(np.sum(w * (y_arr - fitted) ** 2)) / ss_tot if ss_tot > 0 else float("nan")

    low, high = np.array(form.bounds()).T
    at_bound = (theta - low < BOUND_TOLERANCE) | (high - theta < BOUND_TOLERANCE)
    # The shape noise scales the covariance; when the law itself misfits beyond the seed noise, the
    # residual mean square (lack of fit included) does, with its own dof.
    misfit = noise.lack_of_fit_p is not None and noise.lack_of_fit_p < LACK_OF_FIT_P
    if misfit:
        sigma2, sigma_dof = max(chisqr / max(n - p, 1), noise.shape), max(n - p, 1)
    else:
        sigma2, sigma_dof = noise.shape, noise.shape_dof
    gn_cov, condition = _gauss_newton_covariance(form, theta, log_x, fit_w, at_bound, sigma2)
    nat_jac = form.natural_jacobian(theta, scales)
    covariance = nat_jac @ gn_cov @ nat_jac.T
    groups = Groups.of(x_arr)

    draws: Draws | None = None
    boot_natural = np.empty((0, p))
    if n_bootstrap > 0:
        draws = bootstrap(form, theta, log_x, log_y, w, loss, delta, bootstrap_scheme, n_bootstrap, seed)
        boot_natural = form.to_natural(draws.theta, scales)
        usable = boot_natural[draws.converged] if draws.converged.sum() > p else boot_natural
        covariance = np.atleast_2d(np.cov(usable, rowvar=False))

    names = form.param_names
    stderr: dict[str, float | None] = {}
    for i, name in enumerate(names):
        var = covariance[i, i]
        usable_err = np.isfinite(var) and var >= 0 and not (draws is None and at_bound[i])
        stderr[name] = float(np.sqrt(var)) if usable_err else None

    result = FitResult(
        law=form.name,
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
        seeds=seed_labels,
        weights=fit_w,
        loss=loss,
        delta=delta if loss == "huber" else 0.0,
        objective=point.objective,
        condition_number=condition,
        stderr_method="bootstrap" if draws is not None else "gauss-newton",
        bootstrap_scheme=bootstrap_scheme,
        bootstrap_params=boot_natural,
        bootstrap_converged=float(draws.converged.mean()) if draws is not None else float("nan"),
        noise=noise,
        sigma2=sigma2,
        sigma_dof=int(sigma_dof),
        n_starts=point.n_starts,
        n_polished=point.n_polished,
        n_iterations=point.n_iterations,
        seed=int(seed),
        gamma=form.outer_value,
        gamma_sd=float(gamma_sd),
        gamma_dof=int(gamma_dof),
        x_label=x_label or form.columns[0],
    )
    result.warnings = _fit_warnings(result, form)
    return result


def _fit_with_noise(
    law: Law,
    raw_log_x: Array,
    log_x: Array,
    log_y: Array,
    weights: Array,
    groups: NDArray[np.integer],
    seeds: NDArray[np.integer] | None,
    loss: str,
    delta: float | None,
) -> tuple[PointFit, NoiseModel, Array, float]:
    """The point fit and the noise model of its residuals, each informing the other once.

    Least squares first; when the replicates show σ changing with N (predictor.noise), weighted least
    squares with weights 1 / σ²(N); for the Huber loss, δ = 1.345 σ̂ from the pure error. Returns the
    fit, its noise model, the weights it used and δ (0 for least squares).
    """
    point = fit_point(law, log_x, log_y, weights, "lsq", LSQ_SCALE)
    noise = noise_model(raw_log_x, log_y - law.log_value(point.theta, log_x), groups, seeds, law.n_params)
    fit_weights = weights
    if noise.model == "power":
        fit_weights = weights / noise.scale(raw_log_x[:, 0])
        point = fit_point(law, log_x, log_y, fit_weights, "lsq", LSQ_SCALE)
    if loss == "huber":
        if delta is None:
            # σ̂ must itself resist the outliers Huber is for: the normalised median absolute deviation
            # of the residuals of an initial robust fit, an (almost) least-absolute-deviation one
            # (Huber & Ronchetti 2009, §6.7: an M-estimate with a preliminary robust scale).
            initial = fit_point(law, log_x, log_y, fit_weights, "huber", INITIAL_DELTA)
            residuals = log_y - law.log_value(initial.theta, log_x)
            mad = float(np.median(np.abs(residuals - np.median(residuals))))
            delta = HUBER_EFFICIENCY * MAD_TO_SIGMA * mad if mad > 0 else float(np.sqrt(noise.pure_error))
        point = fit_point(law, log_x, log_y, fit_weights, loss, delta)
    if noise.model == "power" or loss == "huber":
        residuals = log_y - law.log_value(point.theta, log_x)
        noise = noise_model(raw_log_x, residuals, groups, seeds, law.n_params)
    # Least squares has no δ; the solver's objective scale takes 1 (predictor.objective).
    return point, noise, fit_weights, float(delta) if loss == "huber" and delta is not None else LSQ_SCALE


def _gauss_newton_covariance(
    law: Law, theta: Array, log_x: Array, weights: Array, at_bound: NDArray[np.bool_], sigma2: float
) -> tuple[Array, float]:
    """Covariance of the internal parameters, σ²(JᵀWJ)⁻¹ over the free ones, and its condition number.

    σ² is one run's noise (at N̄ under the σ(N) model, whose 1 / σ²(N) the weights carry). The
    least-squares form serves the Huber fit too: with δ = 1.345 σ̂ most points sit in its quadratic
    part. Parameters at a bound get zero variance.
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
    cov[np.ix_(free, free)] = sigma2 * np.linalg.pinv(info)
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
            f"trade off against each other; widen the range of {result.x_label}"
        )
    spare = result.n_groups - law.n_params
    if spare < 2:
        out.append(
            f"only {result.n_groups} distinct {result.x_label} for {law.n_params} parameters: the law's "
            "shape beyond them is barely constrained and its misfit cannot be tested; add proxy widths"
        )
    noise = result.noise
    if noise.lack_of_fit_p is not None and noise.lack_of_fit_p < LACK_OF_FIT_P:
        out.append(
            f"the law does not fit the points beyond seed noise (lack-of-fit F = {noise.lack_of_fit_f:.2f}, "
            f"p = {noise.lack_of_fit_p:.3f}): the intervals use the larger residual scatter, but a law "
            "that misses the proxies may miss the target more; look at the residuals"
        )
    if noise.pure_dof == 0:
        out.append(
            "no seed replicates: the noise is taken from the scatter about the law itself, which cannot "
            "tell seed noise from misfit; add a second seed at some widths"
        )
    if np.isfinite(result.bootstrap_converged) and result.bootstrap_converged < MIN_CONVERGED:
        out.append(
            f"only {result.bootstrap_converged:.0%} of bootstrap refits converged: standard errors are rough"
        )
    return out
