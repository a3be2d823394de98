"""Bootstrap over the proxies: parameter draws for bootstrap standard errors (`fit(n_bootstrap=...)`).

Prediction intervals do not come from here (predictor.result derives them from the noise model);
the bootstrap reproduces the standard errors the Chinchilla replication reports (Besiroglu et al.
2024), and stays available for any fit.

Replicate seeds of one width are not independent evidence about the curve: they share everything
but the seed. So the unit of resampling is the *group* of points with the same x (a width), and the
seed spread inside groups is resampled separately. Two schemes:

``"residual"`` (default) keeps the design fixed. With fitted log loss f_i and log residual r_i, each
group g has a mean residual r̄_g and within-group deviations d_i = r_i − r̄_g. A resample is
``log y*_i = f_i + u*_g(i) + (d*_i − mean_g d*)``: the group effects u* are drawn with replacement
from the centred r̄_g (inflated by √(G/(G−p)) for the degrees of freedom the fit used), the
deviations d* from all groups' pooled deviations (inflated by √(m/(m−1))), re-centred within each
group so the group means are exactly f + u*. Proxy ladders have few widths (often 5–8); resampling
whole widths then often drops the largest one or leaves fewer distinct widths than parameters,
and the refit extrapolates wildly. Keeping the design avoids that.

``"cases"`` resamples groups with replacement, then replicates within each chosen group (the
hierarchical case bootstrap, as Epoch did on the Chinchilla points, where every point is its own
group). Resamples with fewer than p + 1 distinct groups are drawn again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from predictor.laws import Array, Law
from predictor.solver import refit_batch

SCHEMES = ("residual", "cases")
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class Groups:
    """Points sharing an x (replicate seeds of one width)."""

    index: IntArray  # (n,) group of each point
    sizes: IntArray  # (G,) points per group

    @property
    def count(self) -> int:
        return len(self.sizes)

    @classmethod
    def of(cls, x: Array) -> Groups:
        _, index, sizes = np.unique(x, axis=0, return_inverse=True, return_counts=True)
        return cls(index=index.reshape(-1), sizes=sizes)

    def means(self, values: Array) -> Array:
        """Per-group means of values (..., n) → (..., G)."""
        onehot = np.zeros((len(self.index), self.count))
        onehot[np.arange(len(self.index)), self.index] = 1.0
        return np.asarray((values @ onehot) / self.sizes)


@dataclass(frozen=True)
class Draws:
    """What a fit keeps from its bootstrap, in internal coordinates."""

    theta: Array  # (B, p) refitted parameters
    converged: Array  # (B,) bool


def _residual_resamples(
    rng: np.random.Generator, n_boot: int, groups: Groups, fitted: Array, residuals: Array, n_params: int
) -> Array:
    """log y* (B, n) for the fixed-design residual scheme (see module docstring)."""
    g = groups.count
    group_mean = groups.means(residuals)
    effects = (group_mean - group_mean.mean()) * np.sqrt(g / max(g - n_params, 1))
    drawn = effects[rng.integers(g, size=(n_boot, g))][:, groups.index]  # (B, n)
    sizes = groups.sizes[groups.index]
    replicated = sizes > 1
    if not replicated.any():
        return np.asarray(fitted + drawn)
    pool = (residuals - group_mean[groups.index])[replicated]
    pool = pool * np.sqrt(sizes[replicated] / (sizes[replicated] - 1.0))
    deviations = pool[rng.integers(len(pool), size=(n_boot, len(fitted)))]
    deviations = deviations - groups.means(deviations)[:, groups.index]
    return np.asarray(fitted + drawn + deviations)


def _case_counts(rng: np.random.Generator, n_boot: int, groups: Groups, n_params: int) -> Array:
    """How often each point is drawn (B, n): groups with replacement, then replicates within."""
    g = groups.count
    chosen = rng.integers(g, size=(n_boot, g))
    # Redraw degenerate resamples: with ≤ p distinct groups the law interpolates and extrapolates
    # arbitrarily. Validation guarantees G ≥ p + 1, so a valid resample exists.
    for _ in range(1000):
        distinct = np.array([len(np.unique(row)) for row in chosen])
        bad = distinct <= n_params
        if not bad.any():
            break
        chosen[bad] = rng.integers(g, size=(int(bad.sum()), g))
    counts = np.zeros((n_boot, len(groups.index)))
    for group in range(g):
        members = np.flatnonzero(groups.index == group)
        times = (chosen == group).sum(axis=1) * len(members)  # (B,) replicate slots to fill
        counts[:, members] = rng.multinomial(times, np.full(len(members), 1.0 / len(members)))
    return counts


def bootstrap(
    law: Law,
    theta_hat: Array,
    log_x: Array,
    log_y: Array,
    weights: Array,
    loss: str,
    delta: float,
    scheme: str,
    n_boot: int,
    seed: int,
) -> Draws:
    """Refit `n_boot` resamples together, warm-started at theta_hat."""
    rng = np.random.default_rng(seed)
    groups = Groups.of(log_x)
    fitted = law.log_value(theta_hat, log_x)
    residuals = log_y - fitted
    p = law.n_params
    if scheme == "residual":
        targets, case_weights = _residual_resamples(rng, n_boot, groups, fitted, residuals, p), weights[None]
    else:
        targets, case_weights = log_y[None], weights * _case_counts(rng, n_boot, groups, p)
    theta, converged, _ = refit_batch(law, theta_hat[None], log_x, targets, case_weights, loss, delta)
    return Draws(theta=theta, converged=converged)
