"""Compare candidate designs at one x: ranks, intervals for the expected loss, and P(best), paired by seed.

Candidates trained with the same seeds are not independent: one seed fixes the initialisation stream and
the batch order of a run, so two designs trained at the same rung of their ladders with the same seed
share part of their noise. Treating them as independent (and comparing single-run samples, as a
prediction interval for one new run would) blurs a difference that is in fact certain: with B = A × 0.99
at every proxy and the same seeds, independent draws give P(B best) ≈ 0.68 where the truth is 1.

So the candidates' log expected losses at x are given one joint sampling distribution. Each fit's
estimate is, to first order, a linear function of its runs' log losses, log L̂(x) ≈ Σ_i a_i log y_i
(a = the influence of each run: gᵀ(JᵀWJ)⁻¹JᵀW, g the gradient of log L at x); its variance is the
delta-method variance FitResult.predict uses, σ² gᵀ(JᵀWJ)⁻¹g, plus the seeds' shared level shift. Two
fits covary through the runs they pair: a run of one and a run of the other at the same ladder rung
(the k-th smallest width of each, or the k-th (N, D) grid point) with the same seed label, whose
residuals correlate with ρ estimated from those paired residuals. P(best) is the share of draws from
this joint distribution (multivariate t, with the smallest of the candidates' degrees of freedom) in
which each candidate is lowest, ties shared: a parametric bootstrap of the expected losses, paired by
seed.

Candidates whose losses are in different units (nats per token under different tokenizers) are ranked
in a common one: `factors` multiplies each candidate's loss into it (bits per byte: 1 / (ln 2 × the
validation bytes per token)). A constant factor shifts a log loss and leaves its spread alone, so only
the means move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.laws import Array, Scales
from predictor.prediction import Prediction
from predictor.result import FitResult

MIN_PAIRED = 3  # paired runs needed to estimate a residual correlation; fewer: treated as independent
TIE = 1e-12  # draws this close (in log loss) share the win


@dataclass(frozen=True)
class Comparison:
    """The candidates at x, in the order of the fits given."""

    x: Any  # the query: one N (or (N, D) row) for all, or one per candidate
    level: float
    predictions: list[Prediction]  # intervals for the expected loss
    ranks: list[int]  # 1 = lowest predicted expected loss
    probability_best: list[float]  # each candidate's share of joint draws in which it is lowest
    correlation: Array  # (K, K) correlation of the candidates' log expected losses
    paired_runs: Array  # (K, K) runs paired by (rung, seed) between candidates

    @property
    def best(self) -> int:
        """Index of the candidate with the lowest predicted expected loss."""
        return self.ranks.index(1)


def compare(
    fits: list[FitResult],
    x: Any = None,
    level: float = 0.9,
    *,
    at: Sequence[Any] | None = None,
    factors: Sequence[float] | None = None,
    n_draws: int = 20000,
    seed: int = 0,
) -> Comparison:
    """Rank `fits` by expected loss at x (a scalar N, or an (N, D) row for two-column laws), or each at
    its own query `at[k]` (designs at one compute budget, each at its own compute-optimal (N*, D*)),
    with P(best) paired by seed, each candidate's loss multiplied by its factor into a common unit when
    given (module docstring)."""
    if len(fits) < 2:
        raise ValueError(f"compare takes at least two fits; got {len(fits)}")
    if (x is None) == (at is None):
        raise ValueError("give one query x for every fit, or `at`: one query per fit")
    queries = [x] * len(fits) if at is None else list(at)
    if len(queries) != len(fits):
        raise ValueError(f"give one query per fit: {len(queries)} queries for {len(fits)} fits")
    if factors is not None and len(factors) != len(fits):
        raise ValueError(f"give one factor per fit: {len(factors)} factors for {len(fits)} fits")
    predictions = [
        f.predict(q, level=level, interval="expected").scaled(1.0 if factors is None else factors[i])
        for i, (f, q) in enumerate(zip(fits, queries, strict=True))
    ]
    if any(np.ndim(p.mean) for p in predictions):
        raise ValueError("compare ranks at one point per fit: give a scalar N or one (N, D) row")
    means = np.log([float(p.mean) for p in predictions])
    influence = [_influence(f, q) for f, q in zip(fits, queries, strict=True)]
    k = len(fits)
    cov = np.zeros((k, k))
    paired = np.zeros((k, k))
    for i in range(k):
        cov[i, i] = float(predictions[i].log_sd) ** 2
    for i in range(k):
        for j in range(i + 1, k):
            cov[i, j] = cov[j, i] = _covariance(fits[i], fits[j], influence[i], influence[j])
            paired[i, j] = paired[j, i] = len(_pairs(fits[i], fits[j]))
    sd = np.sqrt(np.diag(cov))
    correlation = cov / np.outer(sd, sd) if np.all(sd > 0) else np.eye(k)
    dof = min(float(p.dof) for p in predictions)
    probability = _probability_lowest(means, cov, dof, n_draws, seed)
    order = np.argsort(means, kind="stable")
    ranks = [0] * k
    for rank, index in enumerate(order, start=1):
        ranks[int(index)] = rank
    return Comparison(
        x=x if at is None else list(at),
        level=level,
        predictions=predictions,
        ranks=ranks,
        probability_best=probability,
        correlation=correlation,
        paired_runs=paired,
    )


def _influence(fit: FitResult, x: Any) -> Array:
    """d log L̂(x) / d log y_i for each run i (n,): gᵀ(JᵀWJ)⁻¹JᵀW over the free parameters."""
    law = fit.law_form
    columns = len(law.columns)
    theta = law.to_internal(fit.param_array, Scales.none(columns))
    free = ~np.array([fit.at_bound[name] for name in law.param_names])
    _, jac = law.log_value_and_jacobian(
        theta, np.log(np.asarray(fit.x, float).reshape(-1, columns))
    )  # (n, p)
    _, grad = law.log_value_and_jacobian(theta, np.log(np.asarray(x, float).reshape(1, columns)))  # (1, p)
    jac, grad = jac[:, free], grad[0, free]
    w = fit.weights
    info = jac.T @ (jac * w[:, None])
    return np.asarray((grad @ np.linalg.pinv(info)) @ (jac * w[:, None]).T)


def _slots(fit: FitResult) -> dict[tuple[int, int], int]:
    """(rung, seed) → run index: the k-th smallest N of the ladder, and the run's seed label."""
    if fit.seeds is None:
        return {}
    rows = np.asarray(fit.x, float).reshape(len(fit.y), -1)  # N, or (N, D): a grid point is a rung
    rungs = np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)
    return {(int(rung), int(s)): i for i, (rung, s) in enumerate(zip(rungs, fit.seeds, strict=True))}


def _pairs(a: FitResult, b: FitResult) -> list[tuple[int, int]]:
    slots_a, slots_b = _slots(a), _slots(b)
    return [(slots_a[key], slots_b[key]) for key in slots_a.keys() & slots_b.keys()]


def _covariance(a: FitResult, b: FitResult, infl_a: Array, infl_b: Array) -> float:
    """Cov(log L̂_a(x), log L̂_b(x)) through runs paired by (rung, seed)."""
    pairs = _pairs(a, b)
    if len(pairs) < MIN_PAIRED:
        return 0.0
    ia, ib = np.array(pairs).T
    ra, rb = a.log_residuals[ia], b.log_residuals[ib]
    norm = float(np.sqrt(np.sum(ra * ra) * np.sum(rb * rb)))
    rho = float(np.clip(np.sum(ra * rb) / norm, -1.0, 1.0)) if norm > 0 else 0.0
    # Each run's noise SD is σ / √w (w carries σ(N) under that noise model).
    sd_a = np.sqrt(a.sigma2 / a.weights[ia])
    sd_b = np.sqrt(b.sigma2 / b.weights[ib])
    runs = rho * float(np.sum(infl_a[ia] * infl_b[ib] * sd_a * sd_b))
    # The level shift of shared seeds moves both alike, in proportion to the seeds they share.
    shared = len(set(_seed_list(a)) & set(_seed_list(b)))
    overlap = shared / np.sqrt(max(a.noise.n_seeds, 1) * max(b.noise.n_seeds, 1))
    level = rho * overlap * np.sqrt(a.noise.level_shift * b.noise.level_shift)
    return float(runs + level)


def _seed_list(fit: FitResult) -> list[int]:
    return [] if fit.seeds is None else [int(s) for s in fit.seeds]


def _probability_lowest(means: Array, cov: Array, dof: float, n_draws: int, seed: int) -> list[float]:
    """P(each coordinate is the lowest) under a multivariate t(dof) around means, ties shared."""
    rng = np.random.default_rng(seed)
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))  # cov = root rootᵀ, also when singular
    z = rng.standard_normal((n_draws, len(means))) @ root.T
    if np.isfinite(dof):
        z *= np.sqrt(dof / rng.chisquare(dof, size=(n_draws, 1)))
    draws = means + z
    lowest = draws.min(axis=1, keepdims=True)
    winners = draws <= lowest + TIE
    share = winners / winners.sum(axis=1, keepdims=True)
    return [float(v) for v in share.mean(axis=0)]
