"""Is a fit a scaling law at all? The gate a fit passes before it is served as a prediction.

A least-squares fit always returns parameters, even to a ladder whose loss does not fall with N (a
proxy recipe that is too short, an untuned LR, widths too close together). Its extrapolation is then
an artefact of the law's form: a floor E pinned by nothing, A ± 1e17, intervals spanning most of the
loss axis. Such a fit must be reported for what it is, with what to change, and never ranked.

Four checks, each with a stated bound:

* **trend**: the loss falls with N beyond the noise: ordinary least squares of log loss on log N over
  every point, one-sided t-test of a negative slope at TREND_P (n − 2 dof). The slope of a decreasing
  power law with a floor is negative over any range, so a correct law passes this with enough data;
  a flat or rising ladder does not.
* **R² > 0**: the law explains more of the loss than its mean does.
* **identified**: the parameter correlation matrix is not singular (condition number ≤ the fit's
  ILL_CONDITIONED) and every free parameter has a finite standard error.
* **sharp enough**: the 90 % interval for the expected loss at REFERENCE × the largest proxy's N is at
  most ± MAX_HALF_WIDTH of the prediction. A fixed reference makes this a property of the fit, not of a
  query: a far query of a good fit is wide for a reason the prediction itself states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from predictor.fitting import ILL_CONDITIONED
from predictor.result import FitResult

TREND_P = 0.05
REFERENCE = 10.0
MAX_HALF_WIDTH = 0.25


@dataclass(frozen=True)
class Quality:
    """The gate's verdict on a fit, with every figure it rests on."""

    ok: bool
    reasons: list[str] = field(default_factory=list)  # why not, one line each; empty when ok
    slope: float = float("nan")  # d log loss / d log N over the points
    trend_p: float = float("nan")  # one-sided p of "no decrease"
    r2: float = float("nan")
    condition_number: float = float("nan")
    half_width: float = float("nan")  # relative, of the 90 % expected interval at REFERENCE×
    max_half_width: float = MAX_HALF_WIDTH
    reference: float = REFERENCE

    def to_dict(self) -> dict[str, Any]:
        def finite(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "ok": self.ok,
            "reasons": list(self.reasons),
            "slope": finite(self.slope),
            "trend_p": finite(self.trend_p),
            "r2": finite(self.r2),
            "condition_number": finite(self.condition_number),
            "half_width": finite(self.half_width),
            "max_half_width": self.max_half_width,
            "reference": self.reference,
        }


def assess(fit: FitResult, max_half_width: float = MAX_HALF_WIDTH, reference: float = REFERENCE) -> Quality:
    """The four checks above on `fit`; `reasons` says, for each that fails, what it found."""
    if not max_half_width > 0 or not reference >= 1:
        raise ValueError("max_half_width must be positive and reference at least 1")
    reasons: list[str] = []
    n = np.asarray(fit.x, dtype=float)
    log_n = np.log(n if n.ndim == 1 else n[:, 0])
    log_y = np.log(fit.y)
    slope, trend_p = _trend(log_n, log_y)
    if not trend_p < TREND_P:
        reasons.append(
            f"the loss does not fall with N beyond the noise (slope of log loss on log N {slope:+.3f}, "
            f"one-sided p = {trend_p:.2f} ≥ {TREND_P})"
        )
    if not fit.r2 > 0:
        reasons.append(f"R² = {fit.r2:.2f}: the law explains less of the loss than its mean does")
    free = [name for name, at in fit.at_bound.items() if not at]
    missing = [name for name in free if fit.stderr.get(name) is None]
    findings = []
    if fit.condition_number > ILL_CONDITIONED:
        findings.append(f"condition number {fit.condition_number:.2g}")
    if missing:
        findings.append(f"no standard error for {', '.join(missing)}")
    if findings:
        reasons.append(f"the parameters are not identified by these points ({'; '.join(findings)})")
    half = float("nan")
    try:
        prediction = fit.predict(
            fit.x_range[1] * reference if n.ndim == 1 else _reference_row(fit, reference)
        )
        half = float((prediction.upper - prediction.lower) / 2 / prediction.mean)
    except (ValueError, FloatingPointError):
        pass  # no interval at the reference point: `half` stays NaN and fails the bound below
    if not half <= max_half_width:
        reasons.append(
            f"the 90% interval for the expected loss at {reference:g}× the largest proxy is ±{half:.0%}, "
            f"wider than ±{max_half_width:.0%}"
        )
    return Quality(
        ok=not reasons,
        reasons=reasons,
        slope=slope,
        trend_p=trend_p,
        r2=float(fit.r2),
        condition_number=float(fit.condition_number),
        half_width=half,
        max_half_width=max_half_width,
        reference=reference,
    )


def _trend(log_n: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    """OLS slope of log y on log N and the one-sided p-value of a slope ≥ 0."""
    if len(np.unique(log_n)) < 2 or len(log_n) < 3:
        return float("nan"), 1.0
    result = stats.linregress(log_n, log_y)
    if not np.isfinite(result.stderr) or result.stderr == 0:
        return float(result.slope), 0.0 if result.slope < 0 else 1.0
    # H0: slope ≥ 0; small p when the slope is clearly negative.
    return float(result.slope), float(stats.t.cdf(result.slope / result.stderr, len(log_n) - 2))


def _reference_row(fit: FitResult, reference: float) -> np.ndarray:
    """For (N, D) laws: REFERENCE × the largest N at the largest D."""
    x = np.asarray(fit.x, dtype=float)
    return np.array([x[:, 0].max() * reference, *x[:, 1:].max(axis=0)])
