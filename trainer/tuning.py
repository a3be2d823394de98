"""Tune the learning rate once at the base shape, and check that μP transfers it (μ-Transfer in practice).

The μP workflow (Yang et al. 2022, Tensor Programs V, §1 and Fig. 1; Lingle 2024, "A Large-Scale
Exploration of μ-Transfer"): sweep the base LR on a geometric grid at the base shape, train the ladder
at the best LR η*, and trust the ladder only where η* does not move with width (or depth). Lingle sweeps
in ×2 steps and calls transfer successful when the best LR is the same at every width; here the grid is
finer (×√2 by default) and η* comes from a fit, so "the same" becomes "within one ×√2 step, with a
slope of log2 η* against log2 width whose interval includes 0".

Pure: numpy, no torch, no database. The worker queue (app/tuning.py) and the benches drive it alike:
`plan.next_points(observations)` says what to train next (nothing once every curve is settled) and
trainer.tuning_result.analyze(plan, observations) turns the results into η*, its interval and the
transfer verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

ONE_STEP_LOG2 = 0.5  # one ×√2 step in log2 η: the tolerance of "η* does not move"
MIN_REFINE_STEP = 0.25  # half steps toward a diverged neighbour, at most down to a quarter step

Outcome = Literal["ok", "diverged", "failed"]


@dataclass(frozen=True, order=True)
class Shape:
    """What one LR curve is swept at. `steps` is the token horizon (tokens = steps × batch_tokens);
    None: the recipe's own steps (a plan without a horizon check need not know them)."""

    width: int
    depth: int
    steps: int | None = None


Axis = Literal["width", "depth", "horizon"]


@dataclass(frozen=True)
class Point:
    """One run to train: the shape, the grid position (lr = center × factor^index), the seed."""

    shape: Shape
    index: float
    seed: int
    lr: float


@dataclass(frozen=True)
class Observation:
    """A finished run. `outcome`: ok (loss is its validation loss), diverged (an LR too large), or
    failed (the run crashed: no information about the LR, but it was tried)."""

    shape: Shape
    index: float
    seed: int
    outcome: Outcome
    loss: float | None = None


def check_grid(grid_points: int, grid_factor: float, seeds: Iterable[int], max_extensions: int) -> None:
    """Raise ValueError, naming the fix, for a grid that cannot bracket a minimum with an interval."""
    if grid_points < 3:
        raise ValueError(
            f"grid_points {grid_points} cannot bracket a minimum (that takes a point on each side of the "
            "best one): use at least 3"
        )
    if not 1.05 <= grid_factor <= 4:
        raise ValueError(f"grid_factor {grid_factor} must lie in [1.05, 4]: √2 ≈ 1.414 (the default) or 2")
    if len(set(seeds)) < 2:
        raise ValueError(
            f"seeds {list(seeds)}: give at least two different seeds, so that η* comes with an interval "
            "and seed noise is not mistaken for an LR effect"
        )
    if not 0 <= max_extensions <= 20:
        raise ValueError(f"max_extensions {max_extensions} must lie in [0, 20]")


@dataclass(frozen=True)
class TuningPlan:
    """What to sweep: the base shape and the larger widths, depths and token horizons of the transfer
    check. μP transfers η* across width (and Depth-μP / CompleteP across depth), but nothing in μP
    accounts for the training horizon, and the optimal LR falls as training gets longer (Bjorck et al.
    2025, "Scaling Optimal LR Across Token Horizons", ICLR; Shigida, Hanin & Gromov 2026, §3.3): the
    horizon axis measures that at the base width and depth (trainer.tuning_result.HorizonRule)."""

    center_lr: float  # the grid's centre (the spec's LR unless given)
    base: Shape
    widths: tuple[int, ...] = ()  # transfer-check widths, at the base depth
    depths: tuple[int, ...] = ()  # transfer-check depths, at the base width
    horizons: tuple[int, ...] = ()  # horizon-check steps, at the base width and depth (base.steps set)
    seeds: tuple[int, ...] = (0, 1)
    grid_factor: float = math.sqrt(2)
    grid_points: int = 5
    max_extensions: int = 4
    level: float = 0.9  # coverage of every interval below

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center_lr) and self.center_lr > 0):
            raise ValueError(f"lr {self.center_lr} must be a positive number, e.g. the spec's training.lr")
        check_grid(self.grid_points, self.grid_factor, self.seeds, self.max_extensions)
        if self.horizons and self.base.steps is None:
            raise ValueError("a horizon check needs the base shape's steps (Shape(width, depth, steps))")
        if any(h < 1 for h in self.horizons):
            raise ValueError(f"horizons {list(self.horizons)} must be positive step counts")

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """The base shape first, then the other widths, depths and horizons (each at the base's others)."""
        b = self.base
        by_width = [Shape(w, b.depth, b.steps) for w in sorted(set(self.widths)) if w != b.width]
        by_depth = [Shape(b.width, d, b.steps) for d in sorted(set(self.depths)) if d != b.depth]
        by_horizon = [Shape(b.width, b.depth, h) for h in sorted(set(self.horizons)) if h != b.steps]
        return (b, *by_width, *by_depth, *by_horizon)

    def axis_of(self, shape: Shape) -> Axis | None:
        """The one axis along which `shape` differs from the base (None: the base itself)."""
        b = self.base
        if shape.steps != b.steps:
            return "horizon"
        if shape.depth != b.depth:
            return "depth"
        return "width" if shape.width != b.width else None

    def size(self, shape: Shape, axis: Axis) -> int:
        """The shape's coordinate along `axis` (steps for the horizon: tokens are steps × batch)."""
        value = {"width": shape.width, "depth": shape.depth, "horizon": shape.steps}[axis]
        assert value is not None
        return value

    def lr(self, index: float) -> float:
        return self.center_lr * self.grid_factor**index

    def initial_indices(self) -> list[float]:
        return [float(i) for i in range(-(self.grid_points // 2), self.grid_points - self.grid_points // 2)]

    def next_points(self, observations: Iterable[Observation]) -> list[Point]:
        """The runs to train next: the initial grid of new shapes, extensions of unbracketed curves."""
        grouped = by_shape(observations)
        points = []
        for shape in self.shapes:
            status = curve_status(self, grouped.get(shape, []))
            points += [
                Point(shape, index, seed, self.lr(index))
                for index in status.new_indices
                for seed in self.seeds
            ]
        return points

    def initial_points(self) -> list[Point]:
        return self.next_points([])


@dataclass(frozen=True)
class CurveStatus:
    state: Literal["extend", "bracketed", "failed"]
    new_indices: list[float]
    extensions: int
    reason: str | None = None
    crashed: bool = False  # failed because runs crashed, not because the minimum escaped the grid


def curve_status(plan: TuningPlan, observations: list[Observation]) -> CurveStatus:
    """Where one shape's LR curve stands: bracketed, to be extended (with the new grid points), or failed.

    A point's value is its mean loss over seeds; a point where any seed diverged counts as +∞ (an LR
    that is unstable for some seeds is not a good LR). The minimum is bracketed when the best point has a
    tried point on each side; when the neighbour above the best point diverged and no finite point lies
    above, the gap is halved (down to a quarter step) so that the quadratic has points on both sides.
    """
    if not observations:
        return CurveStatus("extend", plan.initial_indices(), 0)
    tried = sorted({o.index for o in observations})
    extensions = _extensions(plan, tried)
    status = _next_step(plan, observations, extensions)
    if status.state != "extend":
        return status
    new = [i for i in status.new_indices if i not in tried]
    if not new:
        lrs = ", ".join(f"{plan.lr(i):.3g}" for i in status.new_indices)
        reason = f"the runs needed to extend the grid (lr {lrs}) crashed: see the runs, then tune again"
        return CurveStatus("failed", [], extensions, reason, crashed=True)
    return CurveStatus("extend", new, extensions)


def _next_step(plan: TuningPlan, observations: list[Observation], extensions: int) -> CurveStatus:
    values = point_values(observations)
    if not values:
        reason = "every run of this curve failed (crashed): see the runs, then tune again"
        return CurveStatus("failed", [], extensions, reason, crashed=True)
    finite = {i: v for i, v in values.items() if math.isfinite(v)}
    lo, hi = min(values), max(values)
    room = extensions < plan.max_extensions
    if not finite:
        if room:
            return CurveStatus("extend", [lo - 1, lo - 2], extensions)
        return CurveStatus(
            "failed",
            [],
            extensions,
            f"every LR from {plan.lr(lo):.3g} to {plan.lr(hi):.3g} diverged: lower the spec's lr "
            "(or the request's lr) and tune again",
        )
    best = min(finite, key=finite.__getitem__)
    if best in (lo, hi):
        edge, new = ("lower", [lo - 1, lo - 2]) if best == lo else ("upper", [hi + 1, hi + 2])
        if room:
            return CurveStatus("extend", new, extensions)
        return CurveStatus(
            "failed",
            [],
            extensions,
            f"the loss still falls toward the {edge} edge of the grid (best lr {plan.lr(best):.3g}) after "
            f"{extensions} extension(s): the minimum is not bracketed between lr {plan.lr(lo):.3g} and "
            f"{plan.lr(hi):.3g}; tune again with a larger max_extensions or grid_factor, or an lr nearer "
            "the optimum",
        )
    above = [i for i in values if i > best]
    if not any(math.isfinite(values[i]) for i in above):
        gap = min(above) - best
        if gap / 2 >= MIN_REFINE_STEP - 1e-9 and room:
            return CurveStatus("extend", [best + gap / 2], extensions)
    return CurveStatus("bracketed", [], extensions)


def _extensions(plan: TuningPlan, tried: list[float]) -> int:
    """Extension rounds so far, read off the tried grid itself (so concurrent planners agree): each edge
    extension adds two whole steps beyond the initial grid, each refinement one fractional step."""
    initial = set(plan.initial_indices())
    edge = [i for i in tried if float(i).is_integer() and i not in initial]
    fractional = [i for i in tried if not float(i).is_integer()]
    return (len(edge) + 1) // 2 + len(fractional)


def point_values(observations: list[Observation]) -> dict[float, float]:
    """Mean loss per grid index; +∞ where any seed diverged; crashed runs carry no information."""
    values: dict[float, list[float]] = {}
    for o in observations:
        if o.outcome == "failed":
            continue
        values.setdefault(o.index, []).append(math.inf if o.outcome == "diverged" else float(o.loss or 0.0))
    return {
        i: (math.inf if any(math.isinf(v) for v in vs) else float(np.mean(vs))) for i, vs in values.items()
    }


def by_shape(observations: Iterable[Observation]) -> dict[Shape, list[Observation]]:
    grouped: dict[Shape, list[Observation]] = {}
    for o in observations:
        grouped.setdefault(o.shape, []).append(o)
    return grouped
