"""Profile-likelihood intervals for the expected loss at a query point.

The delta method linearises log L(x*) in the parameters. Far beyond the data, E, A and alpha trade off
against each other (a lower floor with a steeper decay fits the proxies as well as a higher floor with a
flatter one), and the set of laws that fit is curved and lopsided in L(x*). The profile likelihood
follows that curvature instead of a tangent (Venzon & Moolgavkar 1988; Bates & Watts 1988, §6.1): for
each candidate value c of log L(x*), refit the law subject to log L(x*) = c; the interval is every c
whose constrained deviance exceeds the best fit's by at most t²_ν(level) σ², with σ² and ν the noise
model's (the F(1, ν) form of the likelihood-ratio test when σ is estimated).

The constrained fits are solved all at once by the batched Levenberg-Marquardt of predictor.solver: the
constraint enters as a heavily weighted pseudo-observation at x*. A penalised optimum misses its target
c by a little, but it is the exact constrained optimum for the value it does reach (at a minimum of
S + W·(g − c)², no θ with the same g has a smaller S), so every profile point is read at the g it
reached and the penalty needs no tuning beyond keeping the problem well conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictor.laws import Array, Law, Scales
from predictor.objective import robust_terms
from predictor.solver import refit_batch

# The pseudo-observation's weight, as a multiple of the data's total weight: large enough that the
# reached g sits within ~1e-3 of its target, small enough that Levenberg-Marquardt stays well conditioned.
PENALTY = 1e3
# Where to place the constrained fits, as multiples of t·sd (sd: the delta-method sd of log L(x*)): the
# profile's signed root is nearly linear in c, so a coarse grid interpolates well, and the wide points
# catch a lopsided side.
GRID = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0])
WIDEN = (4.0, 16.0)  # when a side's grid ends before the crossing, retry that side this much wider
# Refits started on the linearised optimum converge in a few iterations near the crossings; the ones that
# do not (far out, a coefficient driven to its bound) still give a feasible deviance, an upper bound on
# the profile there, which can only widen the interval.
MAX_ITER = 50
FALLBACK_SD = 0.01  # a 1 % scale for the grid when the delta method has no finite sd


@dataclass(frozen=True)
class Profile:
    """The profile of log L at one query point: reached log values and signed roots of the deviance."""

    log_values: Array  # increasing
    signed_root: Array  # sign(c − ĉ)·sqrt(ΔS / σ²), increasing in log_values
    center: float  # ĉ, the fitted log L(x*)

    def bounds(self, quantile: float) -> tuple[float, float]:
        """Distances below and above ĉ (log units) where the signed root reaches ∓quantile; inf when a
        side never reaches it within the profiled range (the data do not bound L(x*) on that side)."""
        r, c = self.signed_root, self.log_values
        lower = self.center - float(np.interp(-quantile, r, c)) if r[0] <= -quantile else float("inf")
        upper = float(np.interp(quantile, r, c)) - self.center if r[-1] >= quantile else float("inf")
        return max(lower, 0.0), max(upper, 0.0)


def _deviance(
    law: Law, theta: Array, log_x: Array, log_y: Array, weights: Array, loss: str, delta: float
) -> Array:
    """2 Σ w ρ(r) over the data: the residual sum of squares for least squares, Huber's robust form else."""
    rho, _, _ = robust_terms(law.log_value(theta, log_x) - log_y, loss, delta)
    return np.asarray(2.0 * (weights * rho).sum(axis=-1))


def profile(
    law: Law,
    params: Array,
    x: Array,
    y: Array,
    weights: Array,
    sigma2: float,
    query: Array,
    quantile: float,
    sd: float,
    loss: str = "lsq",
    delta: float = 1.0,
) -> Profile:
    """Profile log L at one query row (n_columns,) for a fit with natural `params` to (x (n, cols), y).

    `quantile` is the largest t the caller will ask `bounds` for, `sd` the delta-method sd of log L(x*)
    that sets the grid's scale.
    """
    scales = Scales(log_x=tuple(np.log(x).mean(axis=0)), log_y=float(np.log(y).mean()))
    log_x = np.log(x) - np.asarray(scales.log_x)
    log_y = np.log(y) - scales.log_y
    theta_hat = law.to_internal(params, scales)
    log_q = np.log(query)[None, :] - np.asarray(scales.log_x)
    center = float(law.log_value(theta_hat, log_q)[0])
    base = float(_deviance(law, theta_hat, log_x, log_y, weights, loss, delta))
    step = quantile * (sd if np.isfinite(sd) and sd > 0 else FALLBACK_SD)

    # Data plus the pseudo-observation at x*; its weight enters only through the penalty.
    all_x = np.vstack([log_x, log_q])
    all_w = np.append(weights, PENALTY * weights.sum())

    # Start each constrained fit where the linearised problem has its optimum: θ̂ moved along H⁻¹g, the
    # cheapest direction (in deviance) that changes log L(x*), by the offset asked (H = JᵀWJ on the
    # data, g = ∇ log L(x*)). Far from the data the curvature takes the refit the rest of the way.
    _, jac = law.log_value_and_jacobian(theta_hat, log_x)
    _, grad = law.log_value_and_jacobian(theta_hat, log_q)
    direction = np.linalg.pinv(jac.T @ (jac * weights[:, None])) @ grad[0]
    reach = float(grad[0] @ direction)
    low, high = np.array(law.bounds()).T

    def solve(offsets: Array) -> tuple[Array, Array]:
        targets = np.column_stack([np.broadcast_to(log_y, (len(offsets), len(log_y))), center + offsets])
        start = (
            theta_hat[None, :] + (offsets / reach)[:, None] * direction[None, :]
            if reach > 0
            else theta_hat[None, :]
        )
        start = np.clip(start, low, high)
        theta, _, _ = refit_batch(law, start, all_x, targets, all_w[None, :], loss, delta, max_iter=MAX_ITER)
        reached = law.log_value(theta, log_q)[..., 0]
        dev = _deviance(law, theta, log_x, log_y, weights, loss, delta)
        return reached, dev

    offsets = np.concatenate([-GRID[::-1], GRID]) * step
    reached, dev = solve(offsets)
    for factor in WIDEN:
        short_low = _root(reached, dev, base, center, sigma2).min() > -quantile
        short_high = _root(reached, dev, base, center, sigma2).max() < quantile
        if not (short_low or short_high):
            break
        sides = ([-1.0] if short_low else []) + ([1.0] if short_high else [])
        extra = np.concatenate([s * GRID * step * factor for s in sides])
        more_reached, more_dev = solve(extra)
        reached, dev = np.append(reached, more_reached), np.append(dev, more_dev)

    reached, dev = np.append(reached, center), np.append(dev, base)
    order = np.argsort(reached)
    root = _root(reached[order], dev[order], base, center, sigma2)
    # The signed root must rise with c; a refit that stalled (rare, at the far ends) breaks that, so keep
    # the running extremes outward from the centre: a conservative, monotone profile.
    mid = int(np.searchsorted(reached[order], center))
    root[mid:] = np.maximum.accumulate(root[mid:])
    root[:mid] = np.minimum.accumulate(root[:mid][::-1])[::-1]
    return Profile(log_values=reached[order] + scales.log_y, signed_root=root, center=center + scales.log_y)


def _root(reached: Array, dev: Array, base: float, center: float, sigma2: float) -> Array:
    gain = np.maximum(dev - base, 0.0) / max(sigma2, 1e-300)
    return np.sign(reached - center) * np.sqrt(gain)
