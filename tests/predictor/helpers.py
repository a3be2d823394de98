"""Synthetic data from known laws, and the reference Chinchilla points."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "chinchilla_svg_extracted_data.csv"

# A saturating law in the range language-model proxies live in (Chinchilla-like E, A and alpha).
TRUE = {"E": 1.8, "A": 400.0, "alpha": 0.34}


def mu_law(n: np.ndarray | float, p: dict[str, float] = TRUE) -> np.ndarray:
    return np.asarray(p["E"] + p["A"] * np.asarray(n) ** -p["alpha"])


def proxy_ladder(
    rng: np.random.Generator, widths: int = 6, seeds: int = 1, noise: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """N spanning 2e6…1e8 (a 50× proxy ladder) with multiplicative log-normal noise."""
    n = np.repeat(np.geomspace(2e6, 1e8, widths), seeds)
    return n, mu_law(n) * np.exp(noise * rng.standard_normal(len(n)))


def chinchilla_points() -> tuple[np.ndarray, np.ndarray]:
    """(N, D) and loss as Epoch fitted them: the 5 highest losses dropped, D = C / 6N."""
    with DATA.open() as f:
        rows = list(csv.DictReader(f))
    n = np.array([float(r["Model Size"]) for r in rows])
    c = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    keep = np.argsort(loss)[:-5]
    return np.column_stack([n[keep], c[keep] / (6 * n[keep])]), loss[keep]
