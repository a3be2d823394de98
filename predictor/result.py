"""FitResult: what a fit found, how sure it is, and how to predict from it (lmfit-style)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from predictor.laws import LAWS, Array, Law, Scales
from predictor.prediction import Prediction, _jsonable

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
    loss: str
    delta: float
    objective: float  # final scaled objective value
    condition_number: float  # of the parameter correlation matrix (Gauss-Newton)
    stderr_method: str  # "bootstrap" or "gauss-newton"
    bootstrap_scheme: str
    bootstrap_params: Array  # (B, p) natural parameters
    bootstrap_spread: Array  # (B,) per-draw factor s_b on deviation and noise
    bootstrap_noise: Array  # (B,) per-draw new-run noise in log loss
    bootstrap_converged: float  # share of resample refits that converged
    noise_sigma: float  # log-space spread of one run about the curve
    noise_dof: int
    n_starts: int
    n_polished: int
    n_iterations: int  # Levenberg-Marquardt iterations of the polish
    seed: int
    warnings: list[str] = field(default_factory=list)

    @property
    def law_spec(self) -> Law:
        return LAWS[self.law]

    @property
    def param_array(self) -> Array:
        return np.array([self.params[name] for name in self.law_spec.param_names])

    # --- prediction ----------------------------------------------------------------------------

    def _query(self, x: Any) -> tuple[Array, bool]:
        """Queried x as (m, n_columns) and whether it was a single point."""
        columns = len(self.law_spec.columns)
        arr = np.asarray(x, dtype=float)
        scalar = arr.ndim == 0 if columns == 1 else arr.ndim == 1
        rows = arr.reshape(-1, columns) if columns > 1 or arr.ndim <= 1 else arr
        if rows.ndim != 2 or rows.shape[1] != columns or (columns > 1 and arr.ndim > 2):
            raise ValueError(
                f"{self.law} predicts at {columns}-column x ({', '.join(self.law_spec.columns)}); "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(rows)) or np.any(rows <= 0):
            raise ValueError("prediction x must be finite and positive")
        return rows, scalar

    def predict(self, x: Any, level: float = 0.9) -> Prediction:
        """Prediction interval (central `level`) for the loss a run at x would reach.

        Each bootstrap draw b gives a curve (its parameter deviation scaled by s_b) plus its new-run
        noise; the interval is the draws' quantiles. Vectorised over draws and query points.
        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie in (0, 1), e.g. 0.9; got {level}")
        if len(self.bootstrap_params) == 0:
            raise ValueError("this fit has no bootstrap draws: refit with n_bootstrap >= 200 for intervals")
        rows, scalar = self._query(x)
        law = self.law_spec
        raw = Scales.none(len(law.columns))
        theta_hat = law.to_internal(self.param_array, raw)
        theta = law.to_internal(self.bootstrap_params, raw)
        theta = theta_hat + self.bootstrap_spread[:, None] * (theta - theta_hat)
        # A draw pushed past an exponent's lower bound (0) would turn its curve upward.
        theta[:, len(law.terms) :] = np.maximum(theta[:, len(law.terms) :], 0.0)
        log_x = np.log(rows)
        # A draw with an extreme spread factor can overflow exp: cap it at a huge but finite loss so
        # quantiles, JSON and probability_best see numbers, not inf.
        log_samples = law.log_value(theta, log_x) + self.bootstrap_noise[:, None]  # (B, m)
        samples = np.exp(np.minimum(log_samples, LOG_LOSS_CAP))
        mean = np.exp(law.log_value(theta_hat, log_x))  # (m,)
        tail = (1.0 - level) / 2.0
        lower, upper = np.quantile(samples, [tail, 1.0 - tail], axis=0)
        factor = rows[:, 0] / self.x_range[1]
        warnings = self._query_warnings(rows, factor)
        if scalar:
            return Prediction(
                x=rows[0] if len(law.columns) > 1 else float(rows[0, 0]),
                mean=float(mean[0]),
                lower=float(lower[0]),
                upper=float(upper[0]),
                level=level,
                extrapolation_factor=float(factor[0]),
                warnings=warnings,
                samples=samples[:, 0],
            )
        return Prediction(
            x=rows if len(law.columns) > 1 else rows[:, 0],
            mean=mean,
            lower=lower,
            upper=upper,
            level=level,
            extrapolation_factor=factor,
            warnings=warnings,
            samples=samples,
        )

    def _query_warnings(self, rows: Array, factor: Array) -> list[str]:
        out = list(self.warnings)
        worst = float(factor.max())
        name = self.law_spec.columns[0]
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
        if len(self.law_spec.columns) > 1:
            top = float(np.max(self.x[:, 1:], axis=0).max())
            if float(rows[:, 1:].max()) > EXTRAPOLATION_WARN * top:
                out.append(f"a query's {self.law_spec.columns[1]} is over 10× the largest fitted one")
        return out

    # --- presentation --------------------------------------------------------------------------

    def report(self, min_correl: float = 0.1) -> str:
        """A plain-text report in the manner of lmfit's fit_report."""
        law = self.law_spec
        distinct = law.columns[0] if len(law.columns) == 1 else f"({', '.join(law.columns)})"
        lines = [
            "[[Model]]",
            f"    {self.law}: {law.formula}",
            "[[Fit Statistics]]",
            f"    # fitting method   = Levenberg-Marquardt on log residuals, {self._loss_text()}",
            f"    # starts           = {self.n_starts} projected, {self.n_polished} polished",
            f"    # iterations       = {self.n_iterations}",
            f"    # data points      = {self.n_points} ({self.n_groups} distinct {distinct}, "
            f"{law.columns[0]} {self.x_range[0]:.4g} … {self.x_range[1]:.4g})",
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
        lines += self._correlation_lines(min_correl)
        lines += [
            "[[Uncertainty]]",
            f"    stderr from        = {self.stderr_method}",
            f"    bootstrap          = {len(self.bootstrap_params)} resamples ({self.bootstrap_scheme}), "
            f"{self.bootstrap_converged:.1%} converged"
            if len(self.bootstrap_params)
            else "    bootstrap          = none (n_bootstrap=0): no prediction intervals",
            f"    run noise (log)    = {self.noise_sigma:.4g}, {self.noise_dof} dof",
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
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        out["x_range"] = [float(v) for v in self.x_range]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        values = dict(d)
        for name in ("covariance", "residuals", "x", "y", "bootstrap_spread", "bootstrap_noise"):
            values[name] = np.asarray(d[name], dtype=float)  # numpy reads JSON's None as NaN
        n_params = len(LAWS[d["law"]].param_names)
        values["bootstrap_params"] = np.asarray(d["bootstrap_params"], dtype=float).reshape(-1, n_params)
        values["x_range"] = (float(d["x_range"][0]), float(d["x_range"][1]))
        values["stderr"] = {k: (None if v is None else float(v)) for k, v in d["stderr"].items()}
        values["warnings"] = list(d["warnings"])
        for f in fields(cls):
            if f.type == "float" and values[f.name] is None:  # a NaN or inf that JSON stored as null
                values[f.name] = float("nan")
        return cls(**{f.name: values[f.name] for f in fields(cls)})
