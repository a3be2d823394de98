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

import numpy as np

from predictor.laws import Array, Law, Scales
from predictor.objective import robust_terms
from predictor.solver import refit_batch

# The pseudo-observation's weight, as a multiple of the data's total weight: large enough that the
# reached g sits within ~1e-3 of its target, small enough that Levenberg-Marquardt stays well conditioned.
PENALTY = 1e3
# The first constrained fits, as multiples of `scale` (t·sd, the delta method's half-width): the
# profile's signed root is nearly linear in c close to the fit, the wide points catch a lopsided side.
GRID = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0])
WIDEN = (4.0, 16.0, 64.0)  # when a side's grid ends before the crossing, retry that side this much wider
# A crossing is read by linear interpolation once the fits bracketing it differ by at most this much in
# signed root (a fraction of the quantile); wider brackets get more fits inside them first.
BRACKET = 0.02
REFINE_POINTS = 6
MAX_REFINES = 4
# Refits started next to their answer converge in a few iterations; one that does not (far out, a
# coefficient driven to its bound) still gives a feasible deviance, an upper bound on the profile there,
# which can only widen the interval.
MAX_ITER = 200
# The outer grid only scouts where the crossings are (a bracket found there is refined with MAX_ITER):
# a fit far out that is still improving after this many iterations has told us enough.
SCOUT_ITER = 30
FALLBACK_SD = 0.01  # a 1 % scale for the grid when the delta method has no finite sd


def _deviance(
    law: Law, theta: Array, log_x: Array, log_y: Array, weights: Array, loss: str, delta: float
) -> Array:
    """2 Σ w ρ(r) over the data: the residual sum of squares for least squares, Huber's robust form else."""
    rho, _, _ = robust_terms(law.log_value(theta, log_x) - log_y, loss, delta)
    return np.asarray(2.0 * (weights * rho).sum(axis=-1))


class Profile:
    """The profile of log L at one query point, refined where it is read.

    Built for a fit with natural `params` to (x (n, cols), y) with weights, noise σ² and the fit's loss;
    `scale` (log units, the delta method's half-width) places the first constrained fits.
    """

    def __init__(
        self,
        law: Law,
        params: Array,
        x: Array,
        y: Array,
        weights: Array,
        sigma2: float,
        query: Array,
        scale: float,
        loss: str = "lsq",
        delta: float = 1.0,
    ) -> None:
        scales = Scales(log_x=tuple(np.log(x).mean(axis=0)), log_y=float(np.log(y).mean()))
        self._law, self._loss, self._delta = law, loss, delta
        self._log_x = np.log(x) - np.asarray(scales.log_x)
        self._log_y = np.log(y) - scales.log_y
        self._weights = weights
        self._sigma2 = max(sigma2, 1e-300)
        self._theta = law.to_internal(params, scales)
        self._log_q = np.log(query)[None, :] - np.asarray(scales.log_x)
        self._shift = scales.log_y
        self._center = float(law.log_value(self._theta, self._log_q)[0])
        self._base = float(_deviance(law, self._theta, self._log_x, self._log_y, weights, loss, delta))
        # Data plus the pseudo-observation at x*; its weight enters only through the penalty.
        self._all_x = np.vstack([self._log_x, self._log_q])
        self._all_w = np.append(weights, PENALTY * weights.sum())[None, :]
        # Start each constrained fit where the linearised problem has its optimum: θ̂ moved along H⁻¹g,
        # the cheapest direction (in deviance) that changes log L(x*), by the offset asked (H = JᵀWJ on
        # the data, g = ∇ log L(x*)). Far from the data the curvature takes the refit the rest of the way.
        _, jac = law.log_value_and_jacobian(self._theta, self._log_x)
        _, grad = law.log_value_and_jacobian(self._theta, self._log_q)
        self._direction = np.linalg.pinv(jac.T @ (jac * weights[:, None])) @ grad[0]
        self._reach = float(grad[0] @ self._direction)
        self._step = scale if np.isfinite(scale) and scale > 0 else FALLBACK_SD
        self._reached = np.array([self._center])
        self._dev = np.array([self._base])
        self._thetas = self._theta[None, :]
        # Inside the delta method's interval first, then outward from those solutions (a continuation:
        # far fits started from θ̂ can take hundreds of iterations, from a near neighbour a few).
        inner, outer = GRID[GRID <= 1.25], GRID[GRID > 1.25]
        self._add(np.concatenate([-inner[::-1], inner]) * self._step)
        self._add(np.concatenate([-outer[::-1], outer]) * self._step, max_iter=SCOUT_ITER)

    @property
    def center(self) -> float:
        """ĉ, the fitted log L(x*)."""
        return self._center + self._shift

    def _add(self, offsets: Array, max_iter: int = MAX_ITER) -> None:
        """Solve the constrained fits aiming at ĉ + offsets, keep what they reached."""
        law = self._law
        targets = np.column_stack(
            [np.broadcast_to(self._log_y, (len(offsets), len(self._log_y))), self._center + offsets]
        )
        # Each fit starts from the solved one nearest its target, moved the rest of the way along H⁻¹g:
        # refinements and widenings then start next to their answer, not from θ̂.
        aims = self._center + offsets
        nearest = np.abs(aims[:, None] - self._reached[None, :]).argmin(axis=1)
        start = self._thetas[nearest]
        if self._reach > 0:
            start = (
                start + ((aims - self._reached[nearest]) / self._reach)[:, None] * self._direction[None, :]
            )
        low, high = np.array(law.bounds()).T
        theta, _, _ = refit_batch(
            law, np.clip(start, low, high), self._all_x, targets, self._all_w, self._loss, self._delta,
            max_iter=max_iter,
        )  # fmt: skip
        reached = law.log_value(theta, self._log_q)[..., 0]
        dev = _deviance(law, theta, self._log_x, self._log_y, self._weights, self._loss, self._delta)
        self._reached = np.append(self._reached, reached)
        self._dev = np.append(self._dev, dev)
        self._thetas = np.vstack([self._thetas, theta])

    def curve(self) -> tuple[Array, Array]:
        """(log values, signed roots sign(c − ĉ)·sqrt(ΔS / σ²)), increasing in c.

        The signed root must rise with c; a refit that stalled (rare, far out) breaks that, so the running
        extremes outward from the centre are kept: a conservative, monotone profile.
        """
        order = np.argsort(self._reached)
        c = self._reached[order]
        gain = np.maximum(self._dev[order] - self._base, 0.0) / self._sigma2
        root = np.sign(c - self._center) * np.sqrt(gain)
        mid = int(np.searchsorted(c, self._center))
        root[mid:] = np.maximum.accumulate(root[mid:])
        root[:mid] = np.minimum.accumulate(root[:mid][::-1])[::-1]
        return c + self._shift, root

    def bounds(self, quantile: float) -> tuple[float, float]:
        """Distances below and above ĉ (log units) where the signed root reaches ∓quantile; inf when a
        side never reaches it (the data do not bound L(x*) on that side)."""
        for factor in WIDEN:  # reach the crossing on both sides
            _, root = self.curve()
            sides = [s for s, short in ((-1.0, root[0] > -quantile), (1.0, root[-1] < quantile)) if short]
            if not sides:
                break
            self._add(np.concatenate([s * GRID * self._step * factor for s in sides]))
        for _ in range(MAX_REFINES):  # then narrow the brackets around it
            c, root = self.curve()
            inside = []
            for target in (-quantile, quantile):
                i = int(np.searchsorted(root, target))
                if 0 < i < len(root) and root[i] - root[i - 1] > BRACKET * quantile:
                    inside.append(np.linspace(c[i - 1], c[i], REFINE_POINTS + 2)[1:-1])
            if not inside:
                break
            self._add(np.concatenate(inside) - self.center)
        c, root = self.curve()
        lower = self.center - float(np.interp(-quantile, root, c)) if root[0] <= -quantile else float("inf")
        upper = float(np.interp(quantile, root, c)) - self.center if root[-1] >= quantile else float("inf")
        return max(lower, 0.0), max(upper, 0.0)
