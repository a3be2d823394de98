"""Optimisers: a multi-start L-BFGS-B for the fit, a batched Gauss-Newton for the bootstrap.

The full-data fit must find the global optimum of a non-convex objective. Instead of a blind grid
over every parameter (Epoch's 4,500 starts), the start grid covers only the exponents: for fixed
exponents the law is linear in its coefficients, so the best coefficients are a small non-negative
least-squares problem (variable projection). All starts are scored in one vectorised pass and only the
best few are polished with L-BFGS-B on the analytic gradient.

The bootstrap refits thousands of slightly perturbed copies of the same problem from a start that
is already close. One scipy call each would cost ~1 ms of Python overhead per resample, so they are
solved together: Levenberg-Marquardt steps on the iteratively reweighted (IRLS) Gauss-Newton model,
vectorised over resamples, each with its own damping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls

from predictor.laws import LOG_COEF_BOUNDS, Array, Law
from predictor.objective import objective_and_gradient, objective_value, robust_terms


@dataclass(frozen=True)
class PointFit:
    """Outcome of the full-data fit, in internal coordinates."""

    theta: Array
    objective: float
    success: bool
    message: str
    n_starts: int  # starts scored on the grid
    n_polished: int  # of which polished with L-BFGS-B
    nfev: int


def projected_starts(law: Law, log_x: Array, y: Array, weights: Array) -> Array:
    """One internal start per grid point of exponents, coefficients by variable projection.

    Relative residuals (L̂ − y)/y approximate the log residuals the fit minimises, and keep the
    projection a linear NNLS (coefficients ≥ 0 because every term of a law is positive).
    """
    exponents = law.start_exponents()
    root_w = np.sqrt(weights)
    lhs_scale = (root_w / y)[:, None]
    low, high = LOG_COEF_BOUNDS
    starts = np.empty((len(exponents), law.n_params))
    for i, exps in enumerate(exponents):
        coef, _ = nnls(law.basis(exps, log_x) * lhs_scale, root_w)
        with np.errstate(divide="ignore"):
            starts[i, : len(law.terms)] = np.clip(np.log(coef), low, high)
        starts[i, len(law.terms) :] = exps
    return starts


def fit_point(
    law: Law,
    log_x: Array,
    log_y: Array,
    weights: Array,
    loss: str,
    delta: float,
    n_polish: int = 6,
) -> PointFit:
    """Global fit: score all projected starts, polish the best `n_polish` with L-BFGS-B."""
    starts = projected_starts(law, log_x, np.exp(log_y), weights)
    scores = objective_value(law, starts, log_x, log_y, weights, loss, delta)
    order = np.argsort(np.where(np.isfinite(scores), scores, np.inf))[:n_polish]
    bounds = law.bounds()
    best = None
    nfev = 0
    for start in starts[order]:
        res = minimize(
            objective_and_gradient,
            start,
            args=(law, log_x, log_y, weights, loss, delta),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-10},
        )
        nfev += int(res.nfev)
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None  # n_polish ≥ 1 and the grid is never empty
    # Gauss-Newton finishes what L-BFGS-B leaves: on the Huber kink its line search can stop a
    # hair short of the optimum ("ABNORMAL_TERMINATION_IN_LNSRCH" with a tiny projected gradient).
    theta, _ = refit_batch(law, best.x[None, :], log_x, log_y[None, :], weights[None, :], loss, delta)
    final = float(objective_value(law, theta[0], log_x, log_y, weights, loss, delta))
    accepted = final <= best.fun
    return PointFit(
        theta=theta[0] if accepted else best.x,
        objective=min(final, float(best.fun)),
        success=bool(best.success) or _stationary(law, best.x, log_x, log_y, weights, loss, delta),
        message=str(best.message),
        n_starts=len(starts),
        n_polished=len(order),
        nfev=nfev,
    )


def _stationary(
    law: Law, theta: Array, log_x: Array, log_y: Array, weights: Array, loss: str, delta: float
) -> bool:
    """Projected gradient small: converged even if the line search reported trouble."""
    _, grad = objective_and_gradient(theta, law, log_x, log_y, weights, loss, delta)
    low, high = np.array(law.bounds()).T
    free = ~(((theta <= low) & (grad > 0)) | ((theta >= high) & (grad < 0)))
    return bool(np.max(np.abs(grad[free]), initial=0.0) < 1e-4)


def refit_batch(
    law: Law,
    theta0: Array,
    log_x: Array,
    log_y: Array,
    weights: Array,
    loss: str,
    delta: float,
    max_iter: int = 200,
    tol: float = 1e-12,
) -> tuple[Array, Array]:
    """Minimise the objective for B problems at once, from theta0 (B, p) or (1, p).

    log_y and weights are (B, n) (or (1, n), shared). Returns (theta (B, p), converged (B,)).
    Each problem takes damped IRLS Gauss-Newton steps (Levenberg-Marquardt): a step is kept only if
    it lowers that problem's objective, otherwise its damping grows, so every iterate is feasible and
    no worse than the start.
    """
    batch = max(len(theta0), len(log_y), len(weights))
    theta = np.array(np.broadcast_to(theta0, (batch, theta0.shape[-1])), dtype=float)
    log_y = np.broadcast_to(log_y, (batch, log_y.shape[-1]))
    weights = np.broadcast_to(weights, (batch, weights.shape[-1]))
    low, high = np.array(law.bounds()).T
    f = objective_value(law, theta, log_x, log_y, weights, loss, delta)
    damping = np.full(batch, 1e-3)
    converged = np.zeros(batch, dtype=bool)
    active = np.arange(batch)
    eye = np.eye(theta.shape[1])
    for _ in range(max_iter):
        if active.size == 0:
            break
        th, ly, w = theta[active], log_y[active], weights[active]
        value, jac = law.log_value_and_jacobian(th, log_x)  # (b, n), (b, n, p)
        _, psi, omega = robust_terms(value - ly, loss, delta)
        grad = np.einsum("bnp,bn->bp", jac, w * psi)
        hess = np.matmul(jac.transpose(0, 2, 1), jac * (w * omega)[..., None])  # (b, p, p)
        diag = np.diagonal(hess, axis1=1, axis2=2)
        # Marquardt scaling (damp each direction by its own curvature) plus a floor for flat ones.
        lift = damping[active, None] * (diag + 1e-12 * diag.max(axis=1, keepdims=True))
        system = hess + eye * lift[:, None, :]
        step = -np.linalg.solve(system, grad[..., None])[..., 0]
        candidate = np.clip(th + step, low, high)
        f_new = objective_value(law, candidate, log_x, ly, w, loss, delta)
        better = f_new < f[active]
        gain = np.where(better, f[active] - f_new, 0.0)
        theta[active[better]] = candidate[better]
        f[active[better]] = f_new[better]
        damping[active] = np.where(better, damping[active] / 3.0, damping[active] * 4.0)
        # Done when a kept step gains almost nothing, or when no step helps at any sane damping.
        small_gain = better & (gain <= tol * np.maximum(f[active], 1.0))
        stuck = damping[active] > 1e8
        done = small_gain | stuck
        converged[active[done]] = True
        active = active[~done]
    return theta, converged
