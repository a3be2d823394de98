"""Compute budgets for an (N, D) law: the allocation at a tokens-per-parameter ratio, and the
compute-optimal frontier N*(C), D*(C), L*(C) with intervals.

Training compute is C = 6·N·D FLOPs (Kaplan et al. 2020, §2.1: about 6N FLOPs per training token for a
dense transformer, N the non-embedding parameters; Hoffmann et al. 2022 use the same approximation).

Minimising L(N, D) = E + A·N^(−α) + B·D^(−β) on C = 6ND gives (Hoffmann et al. 2022, §3.3, Eq. (4)):
    N*(C) = G·(C/6)^a,  D*(C) = G⁻¹·(C/6)^b,  G = (αA / (βB))^(1/(α+β)),  a = β/(α+β),  b = α/(α+β).
Kaplan's form L = (A·N^(−α) + B·D^(−β))^γ has the same minimiser: x ↦ x^γ is increasing for γ > 0, so
both minimise A·N^(−α) + B·D^(−β) on the same line.

Intervals. log N* and log D* = log(C/6) − log N* are smooth functions of (A, B, α, β): their variance is
the delta method's gᵀΣg over the fit's parameter covariance, with Student's t at the fit's σ degrees of
freedom. The loss at the optimum needs no term for the allocation's uncertainty: L is stationary in the
allocation there (the envelope theorem), so to first order L*(C)'s interval is the law's own interval
at (N*, D*), FitResult.predict's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from predictor.laws import Array
from predictor.prediction import Prediction
from predictor.result import FitResult

FLOPS_PER_PARAMETER_TOKEN = 6.0  # C = 6ND (Kaplan et al. 2020, §2.1)
FRONTIER_LAWS = ("chinchilla", "kaplan")  # the (N, D) laws whose optimum the formula below gives


def compute_of(n_params: Any, tokens: Any) -> Array:
    """Training FLOPs of N non-embedding parameters on D tokens: 6ND."""
    return np.asarray(FLOPS_PER_PARAMETER_TOKEN * np.asarray(n_params, float) * np.asarray(tokens, float))


def at_ratio(compute: Any, tokens_per_parameter: float) -> tuple[Array, Array]:
    """(N, D) spending `compute` FLOPs with D = r·N: N = √(C / (6r))."""
    if not tokens_per_parameter > 0:
        raise ValueError(f"tokens_per_parameter must be positive, not {tokens_per_parameter}")
    c = _positive(compute, "compute")
    n = np.sqrt(c / (FLOPS_PER_PARAMETER_TOKEN * tokens_per_parameter))
    return n, tokens_per_parameter * n


@dataclass(frozen=True)
class Frontier:
    """The compute-optimal allocation at each budget, with central `level` intervals."""

    compute: Array
    n_params: Array
    n_lower: Array
    n_upper: Array
    tokens: Array
    tokens_lower: Array
    tokens_upper: Array
    loss: Prediction  # the expected loss at (N*, D*): FitResult.predict's mean and interval
    level: float

    @property
    def tokens_per_parameter(self) -> Array:
        return self.tokens / self.n_params


def compute_optimal(fit: FitResult, compute: Any, level: float = 0.9) -> Frontier:
    """N*(C), D*(C) and the loss there for an (N, D) fit (module docstring); ValueError, naming why, for
    a fit of another law or one whose N or D term vanished (no trade-off to optimise)."""
    if fit.law not in FRONTIER_LAWS:
        raise ValueError(
            f"the compute-optimal frontier needs an (N, D) fit ({' or '.join(FRONTIER_LAWS)}), not {fit.law}"
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), e.g. 0.9; got {level}")
    c = _positive(compute, "compute")
    p = fit.params
    a_coef, b_coef, alpha, beta = p["A"], p["B"], p["alpha"], p["beta"]
    if min(a_coef, b_coef, alpha, beta) <= 0:
        raise ValueError(
            "the fit has no trade-off between N and D (a coefficient or exponent of its N or D term is 0): "
            "add token budgets or widths further apart and fit again"
        )
    log_c6 = np.log(c / FLOPS_PER_PARAMETER_TOKEN)
    s = alpha + beta
    k = np.log(alpha) + np.log(a_coef) - np.log(beta) - np.log(b_coef)
    log_n = (k + beta * log_c6) / s
    log_d = log_c6 - log_n
    # d log N* / d (A, B, alpha, beta), in predictor.laws' natural order (0 for E and γ, on which the
    # allocation does not depend); d log D* is its negative.
    gradient = np.zeros((len(c), len(fit.law_form.param_names)))
    names = list(fit.law_form.param_names)
    gradient[:, names.index("A")] = 1.0 / (s * a_coef)
    gradient[:, names.index("B")] = -1.0 / (s * b_coef)
    gradient[:, names.index("alpha")] = 1.0 / (alpha * s) - log_n / s
    gradient[:, names.index("beta")] = (log_c6 - 1.0 / beta) / s - log_n / s
    variance = np.einsum("mp,pq,mq->m", gradient, fit.covariance, gradient)
    half = stats.t.ppf(0.5 + level / 2.0, max(fit.sigma_dof, 1)) * np.sqrt(np.clip(variance, 0.0, None))
    n, d = np.exp(log_n), np.exp(log_d)
    loss = fit.predict(np.column_stack([n, d]), level=level, interval="expected")
    return Frontier(
        compute=c,
        n_params=n,
        n_lower=np.exp(log_n - half),
        n_upper=np.exp(log_n + half),
        tokens=d,
        tokens_lower=np.exp(log_d - half),
        tokens_upper=np.exp(log_d + half),
        loss=loss,
        level=level,
    )


def _positive(values: Any, name: str) -> Array:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and positive")
    return arr
