"""FitResult: what a fit found, how sure it is, and how to predict from it (lmfit-style)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from predictor.laws import LAWS, Array, Law, Scales
from predictor.noise import NoiseModel
from predictor.prediction import DEFAULT_METHOD, Prediction, _jsonable, check_question, satterthwaite
from predictor.profile import Profile

# Queries this many times beyond the largest fitted N get a warning; the second is "far beyond".
EXTRAPOLATION_WARN = 10.0
EXTRAPOLATION_FAR = 100.0
LOG_LOSS_CAP = 700.0  # exp(700) ≈ 1e304, still a finite float


@dataclass
class FitResult:
    """A fitted scaling law with parameter uncertainty, diagnostics and bootstrap draws.

    Parameters are natural (raw units of x and of the loss). `residuals` are data − model in loss
    units; `r2` is on the loss; `chisqr`, `aic` and `bic` use the log residuals the fit minimised
    (lmfit's Gaussian-likelihood forms). `bootstrap_params` (B, p) are refits of resamples (see
    predictor.bootstrap); `stderr` and `covariance` come from them when there are any, else from the
    Gauss-Newton approximation at the optimum.
    """

    law: str
    params: dict[str, float]
    stderr: dict[str, float | None]
    covariance: Array
    residuals: Array
    r2: float
    chisqr: float
    aic: float
    bic: float
    success: bool
    message: str
    at_bound: dict[str, bool]
    n_points: int
    n_groups: int  # distinct x values (widths); replicates share one
    x_range: tuple[float, float]  # min and max of N (first x column)
    x: Array  # the fitted data, so a stored fit can be re-plotted and re-examined
    y: Array
    seeds: NDArray[np.integer] | None  # each point's seed label, when given (pairs replicates and candidates)
    weights: Array  # the weights the fit used (1 / σ²(N) relative under the σ(N) noise model)
    loss: str
    delta: float  # Huber's δ (0 for least squares)
    objective: float  # final scaled objective value
    condition_number: float  # of the parameter correlation matrix (Gauss-Newton)
    stderr_method: str  # "bootstrap" or "gauss-newton"
    bootstrap_scheme: str
    bootstrap_params: Array  # (B, p) natural parameters (empty without a bootstrap)
    bootstrap_converged: float  # share of resample refits that converged
    noise: NoiseModel  # seed noise, lack of fit, seed effect, σ(N) (predictor.noise)
    sigma2: float  # σ² of one run's log loss the parameter covariance is scaled by
    sigma_dof: int  # its degrees of freedom
    n_starts: int
    n_polished: int
    n_iterations: int  # Levenberg-Marquardt iterations of the polish
    seed: int
    warnings: list[str] = field(default_factory=list)
    # A fixed-outer law's γ (predictor.laws' kaplan_slice), with the standard error and dof of the fit it
    # came from; its uncertainty enters every interval (`outer_sensitivity`). None for the other laws.
    gamma: float | None = None
    gamma_sd: float = 0.0
    gamma_dof: int = 0
    # What the first x column counts, as warnings and the report name it ("N" unless the caller fitted
    # another count, e.g. total parameters).
    x_label: str = "N"
    # Profiles already computed, by query point (predict(method="profile")); not part of the fit's state.
    _profiles: dict[bytes, Profile] = field(default_factory=dict, repr=False, compare=False)

    @property
    def law_form(self) -> Law:
        form = LAWS[self.law]
        return form.with_outer(self.gamma) if form.fixed_outer and self.gamma is not None else form

    @property
    def log_residuals(self) -> Array:
        """log y − log L̂ at each fitted point: what the fit minimised."""
        return np.asarray(np.log(self.y) - np.log(self.y - self.residuals))

    @property
    def param_array(self) -> Array:
        return np.array([self.params[name] for name in self.law_form.param_names])

    # --- prediction ----------------------------------------------------------------------------

    def _query(self, x: Any) -> tuple[Array, bool]:
        """Queried x as (m, n_columns) and whether it was a single point."""
        columns = len(self.law_form.columns)
        arr = np.asarray(x, dtype=float)
        scalar = arr.ndim == 0 if columns == 1 else arr.ndim == 1
        rows = arr.reshape(-1, columns) if columns > 1 or arr.ndim <= 1 else arr
        if rows.ndim != 2 or rows.shape[1] != columns or (columns > 1 and arr.ndim > 2):
            raise ValueError(
                f"{self.law} predicts at {columns}-column x ({', '.join(self.law_form.columns)}); "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(rows)) or np.any(rows <= 0):
            raise ValueError("prediction x must be finite and positive")
        return rows, scalar

    def predict(
        self,
        x: Any,
        level: float = 0.9,
        interval: str = "expected",
        seeds: int = 1,
        method: str = DEFAULT_METHOD,
    ) -> Prediction:
        """The fitted law at x with a central `level` interval for one of two questions:

        * ``interval="expected"``: the expected loss at x, the law itself. Its uncertainty is the
          parameters' (delta method on log L, the covariance scaled by the shape noise) plus, when
          seeds are shared across widths, the level shift those seeds give the whole ladder (σ_b²/S).
        * ``interval="run"``: what ``seeds`` new runs at x will show, averaged: the above plus one new
          run's noise (its seed's shift and the interaction, predictor.noise) divided by ``seeds``.

        The quantile is Student's t with the Welch-Satterthwaite degrees of freedom of the variance
        components, each with its own (the replicates' pure error, the seed effect's S − 1).

        ``method`` sets how the parameters' part is found: ``"delta"`` linearises log L in the
        parameters; ``"profile"`` refits the law constrained to each candidate L(x) and keeps the values
        the data do not reject (predictor.profile), which follows the E–A–alpha trade-off far from the
        data and may be lopsided. Its half-widths, one per side, replace the delta method's; the noise
        components are added as above. bench/calibration.py measures both.
        """
        check_question(level, interval, seeds, method)
        rows, scalar = self._query(x)
        log_x = np.log(rows)
        log_mean, gradient = self.log_value_and_gradient(log_x)  # (m,), (m, p)
        components = [(np.einsum("mp,pq,mq->m", gradient, self.covariance, gradient), float(self.sigma_dof))]
        if self.gamma is not None and self.gamma_sd > 0:
            components.append((self.outer_sensitivity(log_x) ** 2 * self.gamma_sd**2, float(self.gamma_dof)))
        components += self.noise_components(log_x[:, 0], interval, seeds)
        variance = np.sum([v for v, _ in components], axis=0)
        dof = satterthwaite(components)
        half = stats.t.ppf(0.5 + level / 2.0, dof) * np.sqrt(variance)
        below, above = half, half
        if method == "profile":
            below, above = self._profile_halves(rows, level, components)
        with np.errstate(over="ignore", invalid="ignore"):
            mean, lower, upper = (
                np.exp(np.minimum(v, LOG_LOSS_CAP)) for v in (log_mean, log_mean - below, log_mean + above)
            )
        factor = rows[:, 0] / self.x_range[1]
        warnings = self.query_warnings(rows, factor)
        one_column = len(self.law_form.columns) == 1

        def shaped(values: Array) -> float | Array:
            return float(values[0]) if scalar else values

        return Prediction(
            x=(float(rows[0, 0]) if one_column else rows[0])
            if scalar
            else (rows[:, 0] if one_column else rows),
            mean=shaped(mean),
            lower=shaped(lower),
            upper=shaped(upper),
            level=level,
            extrapolation_factor=shaped(factor),
            warnings=warnings,
            interval=interval,
            seeds=int(seeds),
            log_sd=shaped(np.sqrt(variance)),
            dof=shaped(dof),
        )

    def outer_sensitivity(self, log_x: Array) -> Array:
        """d log L̂(x) / dγ for a fixed-outer law at log x (m, 1), the other parameters refitted (m,).

        At the least-squares optimum the free parameters move with γ as dθ/dγ = −(JᵀWJ)⁻¹JᵀW ∂f/∂γ over
        the fitted points (the implicit function theorem on the Gauss-Newton normal equations), so a
        change of γ is partly absorbed by A, alpha and C where the data are and shows far from them.
        With log L = γ·S, ∂ log L / ∂γ = log L / γ.
        """
        law = self.law_form
        gamma = float(self.gamma) if self.gamma is not None else 1.0
        theta = law.to_internal(self.param_array, Scales.none(1))
        free = ~np.array([self.at_bound[name] for name in law.param_names])
        data_value, data_jac = law.log_value_and_jacobian(theta, np.log(self._x_matrix()))
        root_w = np.sqrt(self.weights)
        shift = np.linalg.lstsq(
            data_jac[:, free] * root_w[:, None], -(data_value / gamma) * root_w, rcond=None
        )[0]
        value, jac = law.log_value_and_jacobian(theta, log_x)
        return np.asarray(value / gamma + jac[:, free] @ shift)

    def noise_components(self, log_n: Array, interval: str, seeds: int) -> list[tuple[Array, float]]:
        """The seed-noise variances (log loss) an interval adds to the parameters' at log N, each with its
        dof: the ladder's level shift from shared seeds, and for "run" one new run's noise / seeds."""
        noise = self.noise
        components = []
        if noise.level_shift > 0:
            components.append((np.full(len(log_n), noise.level_shift), float(max(noise.n_seeds - 1, 1))))
        if interval == "run":
            components.append((noise.new_run(log_n) / seeds, float(max(noise.new_run_dof, 1))))
        return components

    def _profile_halves(
        self, rows: Array, level: float, components: list[tuple[Array, float]]
    ) -> tuple[Array, Array]:
        """Half-widths below and above log L̂ with the parameters' part from the profile likelihood.

        Each side's profile distance d is read as a standard deviation d / t_ν (ν the shape noise's
        dof, the quantile the profile used) and combined with the other components as in the delta
        method, each side with its own Welch-Satterthwaite dof.
        """
        shape_dof = float(self.sigma_dof)
        t_shape = stats.t.ppf(0.5 + level / 2.0, shape_dof)
        # One profile per point serves every level and both questions; the 90 % half-width places its grid.
        t_ninety = stats.t.ppf(0.95, shape_dof)
        sds = np.sqrt(components[0][0])
        loss_delta = self.delta if self.loss == "huber" else 1.0
        out = np.empty((2, len(rows)))
        for i, row in enumerate(rows):
            key = row.tobytes()
            if key not in self._profiles:
                self._profiles[key] = Profile(
                    self.law_form, self.param_array, self._x_matrix(), self.y, self.weights, self.sigma2,
                    row, float(t_ninety * sds[i]), self.loss, loss_delta,
                )  # fmt: skip
            prof = self._profiles[key]
            for side, distance in enumerate(prof.bounds(float(t_shape))):
                if not np.isfinite(distance):  # the data do not bound L(x) on this side
                    out[side, i] = np.inf
                    continue
                # At a vanishing level both are 0: the profile's sd there is the tangent's (delta method's).
                sd = distance / t_shape if t_shape > 0 else float(sds[i])
                parts = [(np.array([sd**2]), shape_dof)]
                parts += [(v[i : i + 1], nu) for v, nu in components[1:]]
                total = float(np.sum([v for v, _ in parts]))
                dof = satterthwaite(parts)
                out[side, i] = stats.t.ppf(0.5 + level / 2.0, dof)[0] * np.sqrt(total)
        return out[0], out[1]

    def _x_matrix(self) -> Array:
        return self.x[:, None] if np.ndim(self.x) == 1 else np.asarray(self.x)

    def log_value_and_gradient(self, log_x: Array) -> tuple[Array, Array]:
        """log L at log x (m, columns) and its gradient with respect to the natural parameters (m, p)."""
        law = self.law_form
        theta = law.to_internal(self.param_array, Scales.none(len(law.columns)))
        value, jac = law.log_value_and_jacobian(theta, log_x)
        # d internal / d natural: 1/coefficient for log coefficients, 1 for exponents. A coefficient at
        # 0 (a bound) has zero variance, so its entry does not matter.
        coefs = self.param_array[: len(law.terms)]
        chain = np.ones(law.n_params)
        with np.errstate(divide="ignore"):
            chain[: len(law.terms)] = np.where(coefs > 0, 1.0 / np.where(coefs > 0, coefs, 1.0), 0.0)
        return value, jac * chain

    def query_warnings(self, rows: Array, factor: Array) -> list[str]:
        """The fit's own warnings plus what querying `rows` (m, columns) at `factor` × the largest fitted
        N calls for: extrapolation far beyond the data, a query below it, a D far past the grid's."""
        out = list(self.warnings)
        worst = float(factor.max())
        name = self.x_label if len(self.law_form.columns) == 1 else self.law_form.columns[0]
        if worst > EXTRAPOLATION_FAR:
            out.append(
                f"{name}={rows[:, 0].max():.3g} is {worst:.0f}× the largest fitted {name} "
                f"({self.x_range[1]:.3g}): far beyond the data, treat the prediction as a rough guess"
            )
        elif worst > EXTRAPOLATION_WARN:
            out.append(
                f"{name}={rows[:, 0].max():.3g} is {worst:.0f}× the largest fitted {name} "
                f"({self.x_range[1]:.3g}): add larger proxies to tighten the interval"
            )
        if float(rows[:, 0].min()) < self.x_range[0]:
            out.append(f"a query lies below the smallest fitted {name} ({self.x_range[0]:.3g})")
        if len(self.law_form.columns) > 1:
            top = float(np.max(self.x[:, 1:], axis=0).max())
            if float(rows[:, 1:].max()) > EXTRAPOLATION_WARN * top:
                out.append(f"a query's {self.law_form.columns[1]} is over 10× the largest fitted one")
        return out

    # --- presentation --------------------------------------------------------------------------

    def report(self, min_correl: float = 0.1) -> str:
        """A plain-text report in the manner of lmfit's fit_report."""
        law = self.law_form
        distinct = self.x_label if len(law.columns) == 1 else f"({', '.join(law.columns)})"
        lines = [
            "[[Model]]",
            f"    {self.law}: {law.formula}",
            "[[Fit Statistics]]",
            f"    # fitting method   = Levenberg-Marquardt on log residuals, {self._loss_text()}",
            f"    # starts           = {self.n_starts} projected, {self.n_polished} polished",
            f"    # iterations       = {self.n_iterations}",
            f"    # data points      = {self.n_points} ({self.n_groups} distinct {distinct}, "
            f"{distinct if len(law.columns) == 1 else law.columns[0]} {self.x_range[0]:.4g} … "
            f"{self.x_range[1]:.4g})",
            f"    # variables        = {len(self.params)}",
            f"    chi-square (log)   = {self.chisqr:.6g}",
            f"    R-squared          = {self.r2:.6f}",
            f"    Akaike info crit   = {self.aic:.4f}",
            f"    Bayesian info crit = {self.bic:.4f}",
            f"    success            = {self.success} ({self.message})",
            "[[Variables]]",
        ]
        width = max(len(n) for n in self.params)
        for name, value in self.params.items():
            err = self.stderr[name]
            text = f"    {name:<{width}}: {value:.6g}"
            if err is not None and value != 0:
                text += f" +/- {err:.4g} ({abs(err / value):.2%})"
            if self.at_bound[name]:
                text += " (at bound)"
            lines.append(text)
        if self.gamma is not None:
            lines.append(
                f"    {'gamma':<{width}}: {self.gamma:.6g} +/- {self.gamma_sd:.4g} on {self.gamma_dof} dof "
                "(fixed: from an (N, D) fit; its uncertainty is in every interval)"
            )
        lines += self._correlation_lines(min_correl)
        lines += [
            "[[Uncertainty]]",
            f"    noise model        = {self.noise.summary()}",
            f"    covariance scale   = σ {np.sqrt(self.sigma2):.3%} (log loss) on {self.sigma_dof} dof",
            f"    stderr from        = {self.stderr_method}"
            + (
                f" ({len(self.bootstrap_params)} resamples, {self.bootstrap_scheme}, "
                f"{self.bootstrap_converged:.1%} converged)"
                if len(self.bootstrap_params)
                else ""
            ),
            f"    condition number   = {self.condition_number:.3g}",
        ]

        if self.warnings:
            lines.append("[[Warnings]]")
            lines += [f"    {w}" for w in self.warnings]
        return "\n".join(lines)

    def _loss_text(self) -> str:
        return f"huber (delta={self.delta:g})" if self.loss == "huber" else "least squares"

    def _correlation_lines(self, min_correl: float) -> list[str]:
        sd = np.sqrt(np.diag(self.covariance))
        if not np.all(np.isfinite(sd)) or np.any(sd == 0):
            return []
        corr = self.covariance / np.outer(sd, sd)
        names = list(self.params)
        pairs = [
            (abs(corr[i, j]), names[i], names[j], corr[i, j])
            for i in range(len(names))
            for j in range(i + 1, len(names))
            if abs(corr[i, j]) >= min_correl
        ]
        if not pairs:
            return []
        out = [f"[[Correlations]] (unreported correlations are < {min_correl:.3f})"]
        out += [f"    C({a}, {b}) = {c:+.4f}" for _, a, b, c in sorted(pairs, reverse=True)]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON types; `from_dict` restores a fit that predicts identically."""
        out = {
            f.name: _jsonable(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("noise", "_profiles")
        }
        out["noise"] = _jsonable(self.noise.to_dict())
        out["x_range"] = [float(v) for v in self.x_range]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        values = dict(d)
        for name in ("covariance", "residuals", "x", "y", "weights"):
            values[name] = np.asarray(d[name], dtype=float)  # numpy reads JSON's None as NaN
        n_params = len(LAWS[d["law"]].param_names)
        values.setdefault("gamma", None)  # fits stored before fixed-outer laws existed
        values.setdefault("gamma_sd", 0.0)
        values.setdefault("gamma_dof", 0)
        values.setdefault("x_label", LAWS[d["law"]].columns[0])
        values["bootstrap_params"] = np.asarray(d["bootstrap_params"], dtype=float).reshape(-1, n_params)
        values["x_range"] = (float(d["x_range"][0]), float(d["x_range"][1]))
        values["stderr"] = {k: (None if v is None else float(v)) for k, v in d["stderr"].items()}
        values["warnings"] = list(d["warnings"])
        values["seeds"] = None if d.get("seeds") is None else np.asarray(d["seeds"], dtype=np.int64)
        values["noise"] = NoiseModel.from_dict(d["noise"])
        for f in fields(cls):
            if f.type == "float" and values[f.name] is None:  # a NaN or inf that JSON stored as null
                values[f.name] = float("nan")
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name != "_profiles"})
