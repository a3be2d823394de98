"""How fast the predictor fits, measured side by side with the brute-force method it replaces.

    python bench/fit_speed.py            # full 4,500-start reference (minutes on a 2-core CPU)
    python bench/fit_speed.py --starts 300   # a slice of the reference grid, for a quick look

1. A 3-parameter fit (mu_scaling, 8 proxies) with 1,000 bootstrap resamples (standard errors on
   request; intervals need none): the budget is 0.3 s.
2. The Chinchilla fit on the reference data (Epoch's 240 points): predictor.fit against the method
   of Besiroglu et al. 2024 (epoch-research/analyzing-chinchilla), i.e. L-BFGS-B with numeric
   gradients from each of a 4,500-point grid of starts, keeping the best. Both must reach the same
   optimum; the predictor must be at least 50× faster.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import TypeVar

# One BLAS thread, set before numpy loads: scipy's L-BFGS-B makes thousands of tiny BLAS calls that
# OpenBLAS threads slow down many-fold on a busy machine. This gives the reference its best case.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

import predictor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.predictor.helpers import chinchilla_points

DELTA = 1e-3
T = TypeVar("T")


def epoch_objective(params: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray) -> float:
    """Epoch's objective: Σ Huber_δ(log L − LSE(a − α log N, b − β log D, e))."""
    a, b, e, alpha, beta = params
    pred = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
    return float(np.sum(huber(DELTA, log_loss - pred)))


def brute_force(x: np.ndarray, y: np.ndarray, n_starts: int | None) -> tuple[np.ndarray, float, int]:
    """Epoch's grid (5 e × 6 a × 6 b × 5 α × 5 β = 4,500 starts), L-BFGS-B, finite differences."""
    grid = list(
        product(
            np.arange(0, 30, 5),  # a
            np.arange(0, 30, 5),  # b
            np.arange(-1, 1.5, 0.5),  # e
            np.arange(0, 2.5, 0.5),  # alpha
            np.arange(0, 2.5, 0.5),  # beta
        )
    )
    if n_starts is not None:  # an evenly spread slice of the grid, for a quick look
        grid = [grid[i] for i in np.linspace(0, len(grid) - 1, n_starts).astype(int)]
    args = (np.log(x[:, 0]), np.log(x[:, 1]), np.log(y))
    best_x, best_f = np.empty(5), np.inf
    for start in grid:
        res = minimize(epoch_objective, np.array(start, dtype=float), args=args, method="L-BFGS-B")
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    return best_x, best_f, len(grid)


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Median wall time of `repeat` calls, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--starts", type=int, default=None, help="use this many of the 4,500 reference starts"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {os.cpu_count()}-core CPU, Python {platform.python_version()}, "
        f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
        f"load average at start {os.getloadavg()[0]:.1f} (shared machine)"
    )

    # 1. Three parameters, 1,000 resamples.
    rng = np.random.default_rng(0)
    n = np.geomspace(2e6, 1e8, 8)
    y = (1.8 + 400.0 * n**-0.34) * np.exp(0.01 * rng.standard_normal(len(n)))
    predictor.fit(n, y)  # warm-up: imports, caches
    t_small, small = timed(lambda: predictor.fit(n, y, n_bootstrap=1000), repeat=7)
    print(
        f"\n[1] mu_scaling, 8 points, 1,000 bootstrap resamples: {t_small:.3f} s median of 7 "
        f"(budget 0.3 s: {'PASS' if t_small <= 0.3 else 'FAIL'})"
    )
    print(f"    params {small.params}")

    # 2. Chinchilla: predictor vs brute force, same data, same objective, one run.
    x, loss = chinchilla_points()
    # Epoch's objective: Huber δ = 1e-3 on log residuals (predictor.fit's default is least squares).
    epoch = {"law": "chinchilla", "loss": "huber", "delta": 1e-3}
    t_ours, ours = timed(lambda: predictor.fit(x, loss, **epoch), repeat=5)
    t_boot, _ = timed(
        lambda: predictor.fit(x, loss, **epoch, n_bootstrap=1000, bootstrap_scheme="cases"),
        repeat=1,
    )
    start = time.perf_counter()
    ref_x, ref_f, n_starts = brute_force(x, loss, args.starts)
    t_ref = time.perf_counter() - start
    a, b, e, alpha, beta = ref_x
    ref = {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": alpha, "beta": beta}
    p = ours.params
    ours_theta = [*np.log([p["A"], p["B"], p["E"]]).tolist(), p["alpha"], p["beta"]]
    ours_f = epoch_objective(np.array(ours_theta), np.log(x[:, 0]), np.log(x[:, 1]), np.log(loss))
    print(f"\n[2] chinchilla on the reference data ({len(loss)} points)")
    print(f"    {'':8}{'predictor.fit':>16}{f'brute force ({n_starts} starts)':>30}")
    for name in ("E", "A", "B", "alpha", "beta"):
        print(f"    {name:8}{p[name]:>16.6g}{ref[name]:>30.6g}")
    print(f"    {'Huber Σ':8}{ours_f:>16.8g}{ref_f:>30.8g}")
    rel_gap = (ours_f - ref_f) / ref_f
    same = rel_gap <= 1e-6 and all(abs(p[k] / ref[k] - 1) < 1e-3 for k in ref)
    print(f"    same optimum: {'YES' if same else 'NO'} (objective gap {rel_gap:+.2e} relative)")
    print(f"    time: predictor.fit {t_ours:.3f} s (median of 5), brute force {t_ref:.1f} s")
    print(f"    speed-up: {t_ref / t_ours:.0f}× (target ≥ 50×: {'PASS' if t_ref / t_ours >= 50 else 'FAIL'})")
    if n_starts < 4500:
        print(
            f"    (reference ran {n_starts} of 4,500 starts: "
            f"the full grid takes ~{4500 / n_starts:.0f}× longer)"
        )
    print(f"    predictor.fit with 1,000 case-bootstrap resamples: {t_boot:.2f} s")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
