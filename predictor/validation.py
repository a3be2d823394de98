"""Checks on what a caller hands to `fit`, with errors that say how to fix the input."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from predictor.laws import LAWS, Array, Law
from predictor.objective import LOSSES

# Fewer resamples than this give standard errors that move noticeably between bootstrap seeds; 0
# switches the bootstrap off (standard errors from the noise model).
MIN_BOOTSTRAP = 200


def check_law(law: str) -> Law:
    if law not in LAWS:
        raise ValueError(f"unknown law {law!r}: choose one of {', '.join(LAWS)}")
    return LAWS[law]


def check_outer(law: Law, gamma: float | None, gamma_sd: float, gamma_dof: int) -> Law:
    """The law with a fixed outer power bound to `gamma` (the law itself for the others); raises
    ValueError naming the fix."""
    if not law.fixed_outer:
        if gamma is not None or gamma_sd:
            raise ValueError(
                f"{law.name} takes no gamma: only a law with a fixed outer power does (kaplan_slice)"
            )
        return law
    if gamma is None:
        raise ValueError(
            f"{law.name} needs gamma, the outer power of a kaplan fit of the same architecture's (N, D) grid "
            "(fit(x_nd, y, law='kaplan').params['gamma'], with its stderr as gamma_sd and its sigma_dof "
            "as gamma_dof)"
        )
    if not (np.isfinite(gamma_sd) and gamma_sd >= 0):
        raise ValueError(f"gamma_sd must be a standard error ≥ 0; got {gamma_sd}")
    if gamma_sd > 0 and not gamma_dof >= 1:
        raise ValueError(
            f"gamma_sd {gamma_sd} needs gamma_dof ≥ 1, the degrees of freedom of the fit gamma came from "
            "(its sigma_dof)"
        )
    return law.with_outer(float(gamma))


def check_options(loss: str, delta: float | None, n_bootstrap: int) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: choose one of {', '.join(LOSSES)}")
    if delta is not None and not (np.isfinite(delta) and delta > 0):
        raise ValueError(
            f"delta must be a positive number, or None for 1.345 × the replicates' noise; got {delta}"
        )
    if n_bootstrap != 0 and n_bootstrap < MIN_BOOTSTRAP:
        raise ValueError(
            f"n_bootstrap must be 0 (standard errors from the noise model) or at least {MIN_BOOTSTRAP}; "
            f"got {n_bootstrap}"
        )


def check_seeds(seeds: Any, n: int) -> NDArray[np.int64] | None:
    """Seed labels as an (n,) array of integers, or None; raises ValueError naming the fix."""
    if seeds is None:
        return None
    labels = np.asarray(seeds)
    if labels.shape != (n,):
        raise ValueError(f"seeds must label every point ({n}); got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("seeds must be integers (the runs' seeds), e.g. [0, 1, 0, 1, ...]")
    return labels.astype(np.int64)


def check_data(law: Law, x: Any, y: Any, weights: Any) -> tuple[Array, Array, Array]:
    """x as (n, n_columns), y (n,) and weights (n,), all finite and positive; raises ValueError."""
    columns = len(law.columns)
    x_arr = np.asarray(x, dtype=float)
    y_arr = np.asarray(y, dtype=float)
    if columns == 1 and x_arr.ndim == 2 and x_arr.shape[1] == 1:
        x_arr = x_arr[:, 0]
    expected = "a 1-D array of N" if columns == 1 else f"an (n, {columns}) array of {', '.join(law.columns)}"
    if (columns == 1 and x_arr.ndim != 1) or (columns > 1 and (x_arr.ndim != 2 or x_arr.shape[1] != columns)):
        raise ValueError(f"{law.name} takes x as {expected}; got shape {x_arr.shape}")
    x_arr = x_arr.reshape(len(x_arr), columns)
    if y_arr.ndim != 1:
        raise ValueError(f"y must be a 1-D array of losses; got shape {y_arr.shape}")
    if len(y_arr) != len(x_arr):
        raise ValueError(
            f"x and y must have the same length, one loss per point; got {len(x_arr)} and {len(y_arr)}"
        )
    w_arr = np.ones(len(y_arr)) if weights is None else np.asarray(weights, dtype=float)
    if w_arr.shape != y_arr.shape:
        raise ValueError(f"weights must have one value per point ({len(y_arr)}); got shape {w_arr.shape}")
    for name, arr in (("x", x_arr), ("y", y_arr), ("weights", w_arr)):
        bad = ~np.isfinite(arr).all(axis=-1) if arr.ndim > 1 else ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name} holds NaN or inf at index {np.flatnonzero(bad).tolist()[:5]}: "
                "drop those points (a diverged run has no loss to fit)"
            )
    if np.any(x_arr <= 0):
        raise ValueError(f"x must be positive ({', '.join(law.columns)} are counts); got min {x_arr.min():g}")
    if np.any(y_arr <= 0):
        raise ValueError(f"losses must be positive (the fit is in log space); got min {y_arr.min():g}")
    if np.any(w_arr <= 0):
        raise ValueError("weights must be positive: drop a point instead of giving it weight 0")
    p = law.n_params
    if len(y_arr) < p + 1:
        raise ValueError(
            f"{law.name} needs at least {p + 1} points (one more than its {p} parameters); got {len(y_arr)}"
        )
    distinct = len(np.unique(x_arr, axis=0))
    if distinct < p + 1:
        raise ValueError(
            f"{law.name} needs at least {p + 1} distinct x values (one more than its {p} parameters); "
            f"got {distinct}: replicate seeds of one width count once, add widths"
        )
    return x_arr, y_arr, w_arr
