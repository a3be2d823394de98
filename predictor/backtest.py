"""Backtest: fit on the smaller proxies, predict the largest, and see whether the intervals held.

This is the check μScaling reports (fit widths 128…896, predict 1024…3072) turned into a function:
the only honest test of an extrapolation is one whose answer was known and hidden. `backtest` scores
each held-out run; `hold_out_largest` scores the mean of the largest proxy's runs, the check a served
fit reports about its own ladder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.fitting import fit
from predictor.laws import Array, Law
from predictor.prediction import _jsonable
from predictor.result import FitResult
from predictor.validation import check_data, check_law


@dataclass(frozen=True)
class Backtest:
    """Predictions for held-out points from a fit on the rest, one entry per held-out point."""

    law: str
    holdout: int  # distinct x values held out (replicate seeds of one width go together)
    level: float
    x: Array  # held-out x: (m,) N, or (m, 2) for chinchilla
    y: Array  # their observed losses
    predicted: Array  # point predictions
    lower: Array
    upper: Array
    relative_error: Array  # (predicted − observed) / observed
    covered: Array  # bool: observed loss inside the interval
    extrapolation_factor: Array  # N / largest N the fit saw
    fit: FitResult  # the fit on the remaining points

    @property
    def mean_abs_relative_error(self) -> float:
        return float(np.mean(np.abs(self.relative_error)))

    @property
    def coverage(self) -> float:
        return float(np.mean(self.covered))

    def to_dict(self, include_fit: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "law": self.law,
            "holdout": self.holdout,
            "level": self.level,
            "x": _jsonable(self.x),
            "y": _jsonable(self.y),
            "predicted": _jsonable(self.predicted),
            "lower": _jsonable(self.lower),
            "upper": _jsonable(self.upper),
            "relative_error": _jsonable(self.relative_error),
            "covered": [bool(c) for c in self.covered],
            "extrapolation_factor": _jsonable(self.extrapolation_factor),
            "mean_abs_relative_error": self.mean_abs_relative_error,
            "coverage": self.coverage,
        }
        if include_fit:
            out["fit"] = self.fit.to_dict()
        return out

    def report(self) -> str:
        lines = [
            f"backtest of {self.law}: fitted {self.fit.n_points} points, held out the {self.holdout} largest",
            f"    {'x':>12} {'observed':>10} {'predicted':>10} {'rel. error':>10}  "
            f"{self.level:.0%} interval        covered",
        ]
        for i in range(len(self.y)):
            n = self.x[i] if self.x.ndim == 1 else self.x[i, 0]
            lines.append(
                f"    {n:>12.4g} {self.y[i]:>10.4f} {self.predicted[i]:>10.4f} "
                f"{self.relative_error[i]:>+10.2%}  "
                f"[{self.lower[i]:.4f}, {self.upper[i]:.4f}]  {'yes' if self.covered[i] else 'NO'}"
            )
        lines.append(
            f"    mean |rel. error| = {self.mean_abs_relative_error:.3%}, coverage = {self.coverage:.0%}"
        )
        return "\n".join(lines)


def backtest(
    x: Any,
    y: Any,
    holdout: int = 2,
    law: str = "mu_scaling",
    *,
    level: float = 0.9,
    interval: str = "run",
    **options: Any,
) -> Backtest:
    """Fit on all but the `holdout` largest N (whole widths), predict those, compare.

    Each held-out point is one run, so the interval is for one new run (`interval="run"`); pass
    ``"expected"`` when y holds means over many seeds. `options` go to `predictor.fit` (seeds, weights,
    loss, delta, n_bootstrap, seed, bootstrap_scheme); `seeds` labels every point, held out or not.
    """
    form = check_law(law)
    weights = options.pop("weights", None)
    x_arr, y_arr, w = check_data(form, x, y, weights)
    fitted, held = _fit_smaller(form, x_arr, y_arr, w, holdout, options.pop("seeds", None), options)
    query = x_arr[held, 0] if x_arr.shape[1] == 1 else x_arr[held]
    pred = fitted.predict(query, level=level, interval=interval)
    observed = y_arr[held]
    predicted = np.asarray(pred.mean)
    lower, upper = np.asarray(pred.lower), np.asarray(pred.upper)
    return Backtest(
        law=law,
        holdout=holdout,
        level=level,
        x=query,
        y=observed,
        predicted=predicted,
        lower=lower,
        upper=upper,
        relative_error=(predicted - observed) / observed,
        covered=(lower <= observed) & (observed <= upper),
        extrapolation_factor=np.asarray(pred.extrapolation_factor),
        fit=fitted,
    )


@dataclass(frozen=True)
class HeldOut:
    """A held-out size: the fit's central interval for the mean of its `runs` runs (the `run` question
    with seeds=runs: the law plus the noise of that many new runs) and the mean measured there."""

    n: float
    mean: float  # predicted
    lower: float
    upper: float
    measured: float  # the mean of the held-out runs
    runs: int
    level: float = 0.9
    extrapolation_factor: float = 1.0  # n / the largest N the fit saw

    @property
    def error(self) -> float:
        """(predicted − measured) / measured: negative when the law promised a lower loss than came."""
        return self.mean / self.measured - 1

    @property
    def inside(self) -> bool:
        return self.lower <= self.measured <= self.upper

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_params": self.n,
            "predicted": self.mean,
            "lower": self.lower,
            "upper": self.upper,
            "measured": self.measured,
            "runs": self.runs,
            "level": self.level,
            "extrapolation_factor": self.extrapolation_factor,
            "error": self.error,
            "inside": self.inside,
        }


def predict_held_out(fitted: FitResult, n: float, losses: Any, level: float = 0.9) -> HeldOut:
    """Predict one held-out size N (its runs' losses given) with the interval for their mean."""
    observed = np.asarray(losses, dtype=float)
    if observed.ndim != 1 or len(observed) == 0 or not np.all(np.isfinite(observed)):
        raise ValueError("give the held-out size's finite losses, at least one")
    p = fitted.predict(float(n), level=level, interval="run", seeds=len(observed))
    return HeldOut(
        n=float(n),
        mean=float(p.mean),
        lower=float(p.lower),
        upper=float(p.upper),
        measured=float(observed.mean()),
        runs=len(observed),
        level=level,
        extrapolation_factor=float(p.extrapolation_factor),
    )


class TooFewSizes(ValueError):
    """Holding out the largest sizes leaves the law too few distinct x values to be fitted and tested."""


def _fit_smaller(
    form: Law, x_arr: Array, y_arr: Array, w: Array, holdout: int, seeds: Any, options: dict[str, Any]
) -> tuple[FitResult, Array]:
    """The law `form` fitted on all but the `holdout` largest N (every run there), and the held-out
    rows' mask. Raises TooFewSizes when the rest leaves fewer than p + 1 distinct x values (or none),
    ValueError for a holdout below 1."""
    widths = np.unique(x_arr[:, 0])
    if not 1 <= holdout < len(widths):
        error = TooFewSizes if holdout >= 1 else ValueError
        raise error(f"holdout must be between 1 and {len(widths) - 1} (distinct N − 1); got {holdout}")
    held = x_arr[:, 0] >= widths[-holdout]
    kept_distinct = len(np.unique(x_arr[~held], axis=0))
    needed = form.n_params + 1
    if kept_distinct < needed:
        raise TooFewSizes(
            f"holdout={holdout} leaves {kept_distinct} distinct x values; {form.name} needs "
            f"{needed}: hold out fewer points or add smaller proxies"
        )
    train_x = x_arr[~held, 0] if x_arr.shape[1] == 1 else x_arr[~held]
    train_seeds = None if seeds is None else np.asarray(seeds)[~held]
    return fit(train_x, y_arr[~held], form.name, seeds=train_seeds, weights=w[~held], **options), held


def hold_out_largest(
    x: Any, y: Any, law: str = "mu_scaling", *, seeds: Any = None, level: float = 0.9, **options: Any
) -> HeldOut | None:
    """Refit `law` without the largest N (every run there) and predict the mean of those runs: how the law
    fitted on this ladder extrapolates one step, scored against a known answer. None when the smaller
    sizes leave the law fewer than p + 1 distinct N, or for a law in more than N alone. `options` go to
    `predictor.fit` (a fixed-outer law's gamma, gamma_sd, gamma_dof)."""
    form = check_law(law)
    x_arr, y_arr, w = check_data(form, x, y, None)
    if x_arr.shape[1] != 1:
        return None
    try:
        fitted, held = _fit_smaller(form, x_arr, y_arr, w, 1, seeds, options)
    except TooFewSizes:
        return None
    return predict_held_out(fitted, float(x_arr[held, 0].max()), y_arr[held], level)
