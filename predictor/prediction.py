"""A prediction with its interval, and the comparison of candidate designs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class Prediction:
    """Predicted loss at x with a prediction interval for a single new run.

    Scalars for a scalar query; arrays of shape (m,) for m query points. `samples` holds the
    bootstrap draws of the loss, (B,) or (B, m), each including new-run noise.
    """

    x: float | Array  # queried N (or (N, D) rows for chinchilla)
    mean: float | Array  # point prediction of the fitted law
    lower: float | Array
    upper: float | Array
    level: float
    extrapolation_factor: float | Array  # N / largest fitted N
    warnings: list[str] = field(default_factory=list)
    samples: Array = field(default_factory=lambda: np.empty(0), repr=False)

    def to_dict(self, include_samples: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "x": _jsonable(np.asarray(self.x)) if np.ndim(self.x) else float(np.asarray(self.x)),
            "mean": _jsonable(self.mean),
            "lower": _jsonable(self.lower),
            "upper": _jsonable(self.upper),
            "level": float(self.level),
            "extrapolation_factor": _jsonable(self.extrapolation_factor),
            "warnings": list(self.warnings),
        }
        if include_samples:
            out["samples"] = _jsonable(self.samples)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prediction:
        def restore(v: Any) -> float | Array:
            return np.asarray(v, dtype=float) if isinstance(v, list) else float(v)

        return cls(
            x=restore(d["x"]),
            mean=restore(d["mean"]),
            lower=restore(d["lower"]),
            upper=restore(d["upper"]),
            level=float(d["level"]),
            extrapolation_factor=restore(d["extrapolation_factor"]),
            warnings=list(d.get("warnings", [])),
            samples=np.asarray(d.get("samples", []), dtype=float),
        )


def probability_best(predictions: list[Prediction]) -> list[float]:
    """Probability that each candidate reaches the lowest loss, from its bootstrap samples.

    Candidates are separate fits, so their draws are independent: P(i best) = E_i[Π_{j≠i} P(X_j > X_i)],
    computed exactly from the empirical distributions (no pairing of draws, so candidates may have
    different numbers of samples). Ties count as a shared win.
    """
    if len(predictions) < 2:
        raise ValueError(f"probability_best compares at least two predictions; got {len(predictions)}")
    sample_sets = []
    for k, p in enumerate(predictions):
        s = np.asarray(p.samples, dtype=float)
        if s.ndim != 1 or s.size == 0:
            raise ValueError(
                f"prediction {k} has samples of shape {s.shape}: predict each candidate at one x "
                "(a scalar query) from a fit with bootstrap draws"
            )
        sample_sets.append(np.sort(s))
    scores = []
    for i, own in enumerate(sample_sets):
        beaten = np.ones_like(own)
        for j, other in enumerate(sample_sets):
            if j == i:
                continue
            above = other.size - np.searchsorted(other, own, side="right")
            ties = np.searchsorted(other, own, side="right") - np.searchsorted(other, own, side="left")
            beaten *= (above + 0.5 * ties) / other.size
        scores.append(float(beaten.mean()))
    total = sum(scores)
    return [s / total for s in scores]
