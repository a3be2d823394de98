"""A prediction with its interval, and the comparison of candidate designs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np

from predictor.laws import Array


def _jsonable(value: Any) -> Any:
    """Arrays and numpy scalars to plain lists and floats (JSON has no NaN: it becomes None)."""
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


INTERVALS = ("expected", "run")
Method = Literal["delta", "profile"]  # how the parameters' part of an interval is found (FitResult.predict)
METHODS: tuple[Method, ...] = get_args(Method)
# The default, chosen by bench/calibration.py under bench/PROTOCOL.md's amendment 1 rule.
DEFAULT_METHOD: Method = "delta"


def check_question(level: float, interval: str, seeds: int, method: str = DEFAULT_METHOD) -> None:
    """Refuse a prediction query's level, question, seed count or method with a message naming the fix."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), e.g. 0.9; got {level}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}; got {interval!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer (how many new runs are averaged); got {seeds}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def satterthwaite(components: list[tuple[Array, float]]) -> Array:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates v_i with ν_i:
    (Σ v_i)² / Σ (v_i² / ν_i), elementwise (Satterthwaite 1946)."""
    total = np.sum([v for v, _ in components], axis=0)
    spread = np.sum([v * v / nu for v, nu in components], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = np.where(spread > 0, total * total / spread, np.inf)
    return np.asarray(dof)


@dataclass(frozen=True)
class Prediction:
    """The fitted law at x with a central interval for one question (see FitResult.predict).

    Scalars for a scalar query; arrays of shape (m,) for m query points.
    """

    x: float | Array  # queried N (or (N, D) rows for chinchilla)
    mean: float | Array  # the fitted law: the expected loss
    lower: float | Array
    upper: float | Array
    level: float
    extrapolation_factor: float | Array  # N / largest fitted N
    warnings: list[str] = field(default_factory=list)
    interval: str = "expected"  # "expected" (the law) or "run" (what `seeds` new runs average to)
    seeds: int = 1
    log_sd: float | Array = 0.0  # standard deviation of log loss behind the interval
    dof: float | Array = float("inf")  # its Welch-Satterthwaite degrees of freedom

    def scaled(self, factor: float) -> Prediction:
        """The same prediction in another unit, `factor` units per unit of loss (bits per byte:
        1 / (ln 2 × bytes per token)); a log-scale spread is unit-free, so log_sd and dof stay."""
        if not factor > 0:
            raise ValueError(f"a unit's factor must be positive, not {factor}")
        return replace(
            self,
            mean=self.mean * factor,
            lower=self.lower * factor,
            upper=self.upper * factor,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": _jsonable(np.asarray(self.x)) if np.ndim(self.x) else float(np.asarray(self.x)),
            "mean": _jsonable(self.mean),
            "lower": _jsonable(self.lower),
            "upper": _jsonable(self.upper),
            "level": float(self.level),
            "extrapolation_factor": _jsonable(self.extrapolation_factor),
            "warnings": list(self.warnings),
            "interval": self.interval,
            "seeds": int(self.seeds),
            "log_sd": _jsonable(self.log_sd),
            "dof": _jsonable(self.dof),
        }
