"""The noise model of a proxy ladder, from its seed replicates (log space: σ is a relative error).

A ladder has G widths with m_g runs each. About a fitted law, the log residuals r split into
(Draper & Smith, *Applied Regression Analysis*, 3rd ed., §2.1 "lack of fit and pure error"):

* pure error: the scatter of runs about their width's mean, Σ(r − r̄_g)², with Σ(m_g − 1) degrees of
  freedom. It measures seed noise whether or not the law is right;
* lack of fit: Σ m_g r̄_g², with G − p degrees of freedom; its mean square against pure error is an F
  test of the law itself.

When the runs carry seed labels and a seed is used at several widths, one seed sets the same
initialisation stream and batch order everywhere, so a seed can shift its whole ladder. The pure error
then splits further (a two-way layout, widths × seeds): a seed effect with S − 1 degrees of freedom and
the residual interaction. The interaction σ_e² is the noise of the curve's *shape*; the seed effect's
variance σ_b² (method of moments, floored at 0) shifts every width alike, so the fitted level carries
σ_b² / S of it; a *new* run brings its own seed, so it carries σ_b² + σ_e².

σ may also change with N. Its per-width variances are regressed on log N (weights m_g − 1); a slope
that differs from 0 at the 1 % level makes the model σ(N) = σ · (N / N̄)^(slope / 2), otherwise σ is a
constant relative error. The choice, the test and its p-value are part of the report.

The lack-of-fit test compares the widths' mean residuals with the noise that moves them: the
interaction when seeds are labelled and shared (a seed's shift is common to every width, so it moves
the whole ladder, never one width against another), else the pure error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from predictor.laws import Array

# σ(N) is used only on this evidence against a constant relative σ: a spurious slope would be
# extrapolated to the target, so the bar is high (at 0.05, 5.3 % of 300 simulated constant-σ ladders
# of 8 widths × 6 seeds took σ(N)).
HETEROSCEDASTIC_P = 0.01


@dataclass(frozen=True)
class NoiseModel:
    """Variances are of log loss (squared relative errors); dof are their degrees of freedom."""

    pure_error: float  # σ² of one run about its width's mean (seed noise of every kind)
    pure_dof: int  # 0 without replicates: then σ² is the scatter about the law (shape, shape_dof)
    lack_of_fit_f: float | None  # F = MS(lack of fit) / MS(pure error); None without replicates
    lack_of_fit_p: float | None
    lack_of_fit_dof: int  # G − p
    seed_effect: float  # σ_b²: a seed's shift shared across widths (0 when not estimable)
    seed_f: float | None  # F for the seed effect against the interaction
    seed_p: float | None
    n_seeds: int  # distinct seeds shared across widths (0 without labels)
    shape: float  # σ² of a width's runs about the curve's shape: the interaction, else pure error
    shape_dof: int
    model: str  # "constant" (relative σ) or "power" (σ ∝ N^(slope/2))
    log_var_slope: float  # d log σ² / d log N from the per-width variances (0 if not estimable)
    log_var_p: float | None  # p-value of that slope against 0
    reference_log_x: float  # N̄ (log) at which `shape` and `pure_error` apply under the power model

    def scale(self, log_x: Array | float) -> Array:
        """σ²(N) / σ²(N̄): 1 under the constant model."""
        if self.model != "power":
            return np.ones_like(np.asarray(log_x, dtype=float))
        return np.asarray(np.exp(self.log_var_slope * (np.asarray(log_x) - self.reference_log_x)))

    def new_run(self, log_x: Array | float) -> Array:
        """σ² of one new run about the expected curve at log N: its seed's shift plus the interaction."""
        if self.n_seeds:
            return (self.seed_effect + self.shape) * self.scale(log_x)
        return self.pure_error * self.scale(log_x)

    @property
    def new_run_dof(self) -> int:
        return self.pure_dof if self.pure_dof and not self.n_seeds else self.shape_dof

    @property
    def level_shift(self) -> float:
        """σ² of the fitted curve's level from the seeds it shares (σ_b² / S)."""
        return self.seed_effect / self.n_seeds if self.n_seeds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseModel:
        return cls(**d)

    def summary(self) -> str:
        seeds = (
            f"; seed effect σ_b = {np.sqrt(self.seed_effect):.3%} (F = {self.seed_f:.2f}, "
            f"p = {self.seed_p:.3f}, {self.n_seeds} shared seeds)"
            if self.n_seeds and self.seed_f is not None and self.seed_p is not None
            else ""
        )
        fit = (
            f"; lack of fit F = {self.lack_of_fit_f:.2f} on ({self.lack_of_fit_dof}, {self.pure_dof}) dof, "
            f"p = {self.lack_of_fit_p:.3f}"
            if self.lack_of_fit_f is not None and self.lack_of_fit_p is not None
            else ""
        )
        how = (
            f"σ(N) ∝ N^{self.log_var_slope / 2:+.2f} (p = {self.log_var_p:.3f})"
            if self.model == "power" and self.log_var_p is not None
            else "constant relative σ"
        )
        if not self.pure_dof:
            return f"{how}; no replicates: σ = {np.sqrt(self.shape):.3%} from the scatter about the law"
        return f"{how}; pure error σ = {np.sqrt(self.pure_error):.3%} on {self.pure_dof} dof{seeds}{fit}"


def noise_model(
    log_x: Array,
    residuals: Array,
    groups: NDArray[np.integer],
    seeds: NDArray[np.integer] | None,
    n_params: int,
) -> NoiseModel:
    """The noise model of log residuals at log N (first column), grouped by width, with optional seeds."""
    log_n = np.asarray(log_x, dtype=float).reshape(len(residuals), -1)[:, 0]
    labels, index, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    n_groups = len(labels)
    means = np.bincount(index, weights=residuals) / sizes
    within = residuals - means[index]
    pure_dof = int(np.sum(sizes - 1))
    pure_ss = float(within @ within)
    lof_dof = n_groups - n_params
    if pure_dof == 0:
        # No replicates: the residual scatter is all there is (lack of fit untestable).
        dof = max(len(residuals) - n_params, 1)
        scatter = float(residuals @ residuals) / dof
        return NoiseModel(
            pure_error=scatter,
            pure_dof=0,
            lack_of_fit_f=None,
            lack_of_fit_p=None,
            lack_of_fit_dof=lof_dof,
            seed_effect=0.0,
            seed_f=None,
            seed_p=None,
            n_seeds=0,
            shape=scatter,
            shape_dof=dof,
            model="constant",
            log_var_slope=0.0,
            log_var_p=None,
            reference_log_x=0.0,
        )
    pure = pure_ss / pure_dof
    seed_effect, seed_f, seed_p, n_seeds = 0.0, None, None, 0
    shape, shape_dof = pure, pure_dof
    if seeds is not None:
        seed_labels, seed_index = np.unique(np.asarray(seeds), return_inverse=True)
        shared = [s for s in range(len(seed_labels)) if len(np.unique(index[seed_index == s])) >= 2]
        if len(shared) >= 2:
            # Two-way layout on the runs of seeds used at two or more widths.
            keep = np.isin(seed_index, shared)
            design = np.column_stack(
                [index[keep][:, None] == np.arange(n_groups)]
                + [(seed_index[keep] == s)[:, None] for s in shared[1:]]
            ).astype(float)
            y = residuals[keep]
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            interaction_ss = float(np.sum((y - design @ coef) ** 2))
            rank = int(np.linalg.matrix_rank(design))
            interaction_dof = int(keep.sum()) - rank
            group_only = np.column_stack([index[keep][:, None] == np.arange(n_groups)]).astype(float)
            g_coef, *_ = np.linalg.lstsq(group_only, y, rcond=None)
            within_ss = float(np.sum((y - group_only @ g_coef) ** 2))
            seed_dof = len(shared) - 1
            if interaction_dof >= 1:
                interaction = interaction_ss / interaction_dof
                seed_ms = (within_ss - interaction_ss) / seed_dof
                widths_per_seed = keep.sum() / len(shared)
                seed_effect = max(0.0, (seed_ms - interaction) / widths_per_seed)
                if interaction > 0:
                    seed_f = seed_ms / interaction
                    seed_p = float(stats.f.sf(seed_f, seed_dof, interaction_dof))
                shape, shape_dof, n_seeds = interaction, interaction_dof, len(shared)

    lof_f = lof_p = None
    if lof_dof > 0 and shape > 0:
        lof_ss = float(np.sum(sizes * means**2))
        lof_f = (lof_ss / lof_dof) / shape
        lof_p = float(stats.f.sf(lof_f, lof_dof, shape_dof))

    slope, slope_p, model = 0.0, None, "constant"
    replicated = sizes >= 2
    reference = float(np.average(log_n, weights=None))
    if replicated.sum() >= 3:
        group_log_n = np.bincount(index, weights=log_n) / sizes
        var_g = np.bincount(index, weights=within**2)[replicated] / (sizes[replicated] - 1)
        x, w = group_log_n[replicated], (sizes - 1)[replicated].astype(float)
        if np.all(var_g > 0) and np.ptp(x) > 0:
            slope, slope_p = _weighted_slope(x, np.log(var_g), w)
            if slope_p is not None and slope_p < HETEROSCEDASTIC_P:
                model = "power"
                reference = float(np.average(x, weights=w))
                # Pure error and shape re-expressed at N̄, so that scale(log N) carries the trend.
                scale = np.exp(slope * (log_n - reference))
                pure = float(np.sum(within**2 / scale)) / pure_dof
                shape = shape * pure / (pure_ss / pure_dof)
    return NoiseModel(
        pure_error=pure,
        pure_dof=pure_dof,
        lack_of_fit_f=lof_f,
        lack_of_fit_p=lof_p,
        lack_of_fit_dof=lof_dof,
        seed_effect=seed_effect,
        seed_f=seed_f,
        seed_p=seed_p,
        n_seeds=n_seeds,
        shape=shape,
        shape_dof=shape_dof,
        model=model,
        log_var_slope=slope,
        log_var_p=slope_p,
        reference_log_x=reference,
    )


def _weighted_slope(x: Array, y: Array, w: Array) -> tuple[float, float | None]:
    """Slope of y on x by weighted least squares and its two-sided p-value (t with k − 2 dof)."""
    k = len(x)
    x_bar, y_bar = np.average(x, weights=w), np.average(y, weights=w)
    sxx = float(np.sum(w * (x - x_bar) ** 2))
    slope = float(np.sum(w * (x - x_bar) * (y - y_bar)) / sxx)
    if k <= 2:
        return slope, None
    resid = y - y_bar - slope * (x - x_bar)
    s2 = float(np.sum(w * resid**2)) / (k - 2)
    se = np.sqrt(s2 / sxx)
    if se == 0:
        return slope, 0.0
    return slope, float(2 * stats.t.sf(abs(slope) / se, k - 2))
