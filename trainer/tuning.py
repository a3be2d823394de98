"""Tune the learning rate once at the base shape, and check that μP transfers it (μ-Transfer in practice).

The μP workflow (Yang et al. 2022, Tensor Programs V, §1 and Fig. 1; Lingle 2024, "A Large-Scale
Exploration of μ-Transfer"): sweep the base LR on a geometric grid at the base shape, train the ladder
at the best LR η*, and trust the ladder only where η* does not move with width (or depth). Lingle sweeps
in ×2 steps and calls transfer successful when the best LR is the same at every width; here the grid is
finer (×√2 by default) and η* comes from a fit, so "the same" becomes "within one ×√2 step, with a
slope of log2 η* against log2 width whose interval includes 0".

Pure: numpy and scipy, no torch, no database. The worker queue (app/tuning.py) and the benches drive it
alike: `plan.next_points(observations)` says what to train next (nothing once every curve is settled)
and `analyze(plan, observations)` turns the results into η*, its interval and the transfer verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

ONE_STEP_LOG2 = 0.5  # one ×√2 step in log2 η: the tolerance of "η* does not move"
WINDOW_STEPS = 1.0  # the quadratic uses the points within one grid step of the best one: wider windows
# let an asymmetric basin (a cliff on the high side) pull the vertex away from the best point
MIN_REFINE_STEP = 0.25  # half steps toward a diverged neighbour, at most down to a quarter step
MIN_SE_LOG2 = 0.05  # floor on an η* standard error (log2), so one very sharp curve cannot take all weight

Outcome = Literal["ok", "diverged", "failed"]


@dataclass(frozen=True, order=True)
class Shape:
    width: int
    depth: int


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
    """What to sweep: the base shape and the larger widths and depths of the transfer check."""

    center_lr: float  # the grid's centre (the spec's LR unless given)
    base: Shape
    widths: tuple[int, ...] = ()  # transfer-check widths, at the base depth
    depths: tuple[int, ...] = ()  # transfer-check depths, at the base width
    seeds: tuple[int, ...] = (0, 1)
    grid_factor: float = math.sqrt(2)
    grid_points: int = 5
    max_extensions: int = 4
    level: float = 0.9  # coverage of every interval below

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center_lr) and self.center_lr > 0):
            raise ValueError(f"lr {self.center_lr} must be a positive number, e.g. the spec's training.lr")
        check_grid(self.grid_points, self.grid_factor, self.seeds, self.max_extensions)

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """The base shape first, then the larger widths, then the larger depths."""
        by_width = [Shape(w, self.base.depth) for w in sorted(set(self.widths)) if w != self.base.width]
        by_depth = [Shape(self.base.width, d) for d in sorted(set(self.depths)) if d != self.base.depth]
        return (self.base, *by_width, *by_depth)

    def lr(self, index: float) -> float:
        return self.center_lr * self.grid_factor**index

    def initial_indices(self) -> list[float]:
        return [float(i) for i in range(-(self.grid_points // 2), self.grid_points - self.grid_points // 2)]

    def next_points(self, observations: Iterable[Observation]) -> list[Point]:
        """The runs to train next: the initial grid of new shapes, extensions of unbracketed curves."""
        by_shape = _by_shape(observations)
        points = []
        for shape in self.shapes:
            status = curve_status(self, by_shape.get(shape, []))
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
    values = _point_values(observations)
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


def _point_values(observations: list[Observation]) -> dict[float, float]:
    """Mean loss per grid index; +∞ where any seed diverged; crashed runs carry no information."""
    values: dict[float, list[float]] = {}
    for o in observations:
        if o.outcome == "failed":
            continue
        values.setdefault(o.index, []).append(math.inf if o.outcome == "diverged" else float(o.loss or 0.0))
    return {
        i: (math.inf if any(math.isinf(v) for v in vs) else float(np.mean(vs))) for i, vs in values.items()
    }


def _by_shape(observations: Iterable[Observation]) -> dict[Shape, list[Observation]]:
    grouped: dict[Shape, list[Observation]] = {}
    for o in observations:
        grouped.setdefault(o.shape, []).append(o)
    return grouped


# -- the analysis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    lr: float
    loss_mean: float | None  # mean validation loss over the seeds that finished (None if none did)
    loss_sd: float | None  # sample SD over seeds (None with fewer than two)
    n: int  # seeds with a loss
    diverged: int  # seeds that diverged at this LR
    failed: int  # seeds whose run crashed


@dataclass(frozen=True)
class Optimum:
    lr_star: float
    lower: float  # the interval's ends, at the plan's level
    upper: float
    se_log2: float  # standard error of log2 η*, for the transfer slope
    curvature: float | None  # d²L / d(log2 η)² at the minimum: how sharp the basin is (nats)
    method: Literal["quadratic", "grid"]
    note: str | None = None


@dataclass(frozen=True)
class Curve:
    shape: Shape
    state: Literal["extend", "bracketed", "failed"]
    reason: str | None
    extensions: int
    points: list[CurvePoint]
    optimum: Optimum | None
    crashed: bool = False


@dataclass(frozen=True)
class Transfer:
    """Does η* move along one axis (width or depth)?"""

    axis: Literal["width", "depth"]
    sizes: list[int]  # the widths (or depths) with an η*
    lr_stars: list[float]
    slope: float | None  # d log2 η* / d log2 size
    lower: float | None
    upper: float | None
    spread_log2: float  # max − min of log2 η* over the sizes
    curvature_ratio: float | None  # curvature at the largest size / at the base: > 1 is a sharpening basin
    verdict: Literal["transfers", "drifts", "inconclusive"]
    reason: str


@dataclass(frozen=True)
class TuningResult:
    status: Literal["running", "succeeded", "failed"]
    level: float
    lr_star: float | None  # at the base shape
    lower: float | None
    upper: float | None
    ladder_lr: float | None  # η* rounded to 3 significant digits: the LR the ladder trains at
    curves: list[Curve]
    transfer: dict[str, Transfer] = field(default_factory=dict)  # "width", "depth" when checked
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_lr(lr: float) -> float:
    """η* to 3 significant digits: the ladder's LR, a stable number to store and to read."""
    return float(f"{lr:.3g}")


def analyze(plan: TuningPlan, observations: Iterable[Observation]) -> TuningResult:
    """η* per shape with intervals, the transfer verdicts, and the tuning's status."""
    by_shape = _by_shape(observations)
    curves = [_curve(plan, shape, by_shape.get(shape, [])) for shape in plan.shapes]
    base = curves[0]
    settled = all(c.state != "extend" for c in curves)
    transfer = {}
    for axis in ("width", "depth"):
        on_axis = [c for c in curves[1:] if _on_axis(plan, c.shape, axis)]
        if on_axis and settled:
            transfer[axis] = _transfer(plan, axis, [base, *on_axis])
    if base.state == "failed":
        status: Literal["running", "succeeded", "failed"] = "failed"
    else:
        status = "succeeded" if settled and base.optimum is not None else "running"
    optimum = base.optimum if status == "succeeded" else None
    return TuningResult(
        status=status,
        level=plan.level,
        lr_star=optimum.lr_star if optimum else None,
        lower=optimum.lower if optimum else None,
        upper=optimum.upper if optimum else None,
        ladder_lr=round_lr(optimum.lr_star) if optimum else None,
        curves=curves,
        transfer=transfer,
        reason=base.reason if status == "failed" else None,
    )


def run_locally(plan: TuningPlan, train: Callable[[list[Point]], list[Observation]]) -> TuningResult:
    """Drive the whole sweep without a queue: train each round's points (in any order, in parallel if
    `train` likes), until every curve is settled. The benches use this; the service uses the queue."""
    observations: list[Observation] = []
    while points := plan.next_points(observations):
        observations += train(points)
    return analyze(plan, observations)


def _on_axis(plan: TuningPlan, shape: Shape, axis: str) -> bool:
    return shape.depth == plan.base.depth if axis == "width" else shape.width == plan.base.width


def _curve(plan: TuningPlan, shape: Shape, observations: list[Observation]) -> Curve:
    status = curve_status(plan, observations) if observations else None
    points = []
    for index in sorted({o.index for o in observations}):
        here = [o for o in observations if o.index == index]
        losses = [float(o.loss) for o in here if o.outcome == "ok" and o.loss is not None]
        points.append(
            CurvePoint(
                lr=plan.lr(index),
                loss_mean=float(np.mean(losses)) if losses else None,
                loss_sd=float(np.std(losses, ddof=1)) if len(losses) > 1 else None,
                n=len(losses),
                diverged=sum(o.outcome == "diverged" for o in here),
                failed=sum(o.outcome == "failed" for o in here),
            )
        )
    if status is None:
        return Curve(shape, "extend", None, 0, [], None)
    optimum = _optimum(plan, observations) if status.state == "bracketed" else None
    return Curve(shape, status.state, status.reason, status.extensions, points, optimum, status.crashed)


def _optimum(plan: TuningPlan, observations: list[Observation]) -> Optimum:
    """η* of a bracketed curve: the vertex of a quadratic in log2 η fitted near the best point.

    The quadratic is fitted to the individual runs within one grid step of the best point, with one
    intercept per seed: a seed (initialisation and batch order) shifts its whole curve, which says
    nothing about where the minimum is, so seed offsets are removed rather than counted as noise. The
    interval is Fieller's (1954) for the ratio η* = −b / 2a: the log2 η where the fitted slope
    2a·x + b is not significantly different from 0 at the plan's level.
    """
    values = _point_values(observations)
    finite = {i: v for i, v in values.items() if math.isfinite(v)}
    best = min(finite, key=finite.__getitem__)
    step = math.log2(plan.grid_factor)
    tried = sorted(values)
    below = max(i for i in tried if i < best)
    above = min(i for i in tried if i > best)
    if not math.isfinite(values[above]) and not any(i > best for i in finite):
        # The next LR up diverged and no finite point lies above the best one: η* is at the edge of
        # stability, somewhere between the best point and the diverged one.
        return _grid_optimum(plan, best, below, above, finite, "the next larger LR diverged")
    window = [
        o
        for o in observations
        if o.outcome == "ok" and o.loss is not None and abs(o.index - best) <= WINDOW_STEPS + 1e-9
    ]
    x = np.array([math.log2(plan.lr(o.index)) for o in window])
    y = np.array([float(o.loss) for o in window if o.loss is not None])
    seeds = sorted({o.seed for o in window})
    design = np.column_stack([x**2, x, *[[float(o.seed == s) for o in window] for s in seeds]])
    dof = len(y) - design.shape[1]
    if len(set(x.tolist())) < 3 or dof < 1:
        return _grid_optimum(plan, best, below, above, finite, "too few runs near the minimum for a fit")
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    a, b = float(coef[0]), float(coef[1])
    residual = y - design @ coef
    sigma2 = float(residual @ residual) / dof
    # Near the minimum the quadratic fits the point means almost exactly, so the window alone leaves
    # 1–3 degrees of freedom and a noise estimate that is sometimes tiny by chance. The seed noise is
    # estimated from the whole curve instead (pure error between seeds, with LR and seed effects
    # removed), and never taken below the window's own residual variance (its lack of fit).
    pooled = _pooled_noise(observations)
    if pooled is not None and pooled[0] > sigma2:
        sigma2, dof = pooled
    elif pooled is not None:
        dof = max(dof, pooled[1])
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    if a <= 0:
        return _grid_optimum(
            plan, best, below, above, finite, "the curve is flat or concave near its minimum"
        )
    x_star = -b / (2 * a)
    x_lo, x_hi = float(x.min()), float(x.max())
    note = None
    if not x_lo <= x_star <= x_hi:
        note = "the fitted vertex fell outside the fitted points; clamped to them"
        x_star = min(max(x_star, x_lo), x_hi)
    t = float(stats.t.ppf(0.5 + plan.level / 2, dof))
    va, vb, cab = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    qa, qb, qc = 4 * (a * a - t * t * va), 4 * (a * b - t * t * cab), b * b - t * t * vb
    if qa > 0 and qb * qb - 4 * qa * qc >= 0:
        root = math.sqrt(qb * qb - 4 * qa * qc)
        lo, hi = (-qb - root) / (2 * qa), (-qb + root) / (2 * qa)
        lo, hi = max(min(lo, x_star), x_lo - step), min(max(hi, x_star), x_hi + step)
    else:
        # The curvature is not significant at this level: the vertex is anywhere in the window.
        lo, hi = x_lo, x_hi
        note = "the curvature is not significant: η* is only known to lie within the fitted points"
    z = float(stats.norm.ppf(0.5 + plan.level / 2))
    return Optimum(
        lr_star=2**x_star,
        lower=2**lo,
        upper=2**hi,
        se_log2=max((hi - lo) / (2 * z), MIN_SE_LOG2),
        curvature=2 * a,
        method="quadratic",
        note=note,
    )


def _pooled_noise(observations: list[Observation]) -> tuple[float, int] | None:
    """(σ², dof) of loss = point effect + seed effect + noise over the curve's finite points."""
    values = _point_values(observations)
    runs = [
        o for o in observations if o.outcome == "ok" and o.loss is not None and math.isfinite(values[o.index])
    ]
    indices = sorted({o.index for o in runs})
    seeds = sorted({o.seed for o in runs})
    dof = len(runs) - len(indices) - len(seeds) + 1
    if dof < 1:
        return None
    design = np.array(
        [[float(o.index == i) for i in indices] + [float(o.seed == s) for s in seeds[1:]] for o in runs]
    )
    y = np.array([float(o.loss) for o in runs if o.loss is not None])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(residual @ residual) / dof, dof


def _grid_optimum(
    plan: TuningPlan, best: float, below: float, above: float, finite: dict[float, float], why: str
) -> Optimum:
    """The best grid point, with its neighbours as the interval (a fallback that says why)."""
    x = {i: math.log2(plan.lr(i)) for i in (below, best, above)}
    curvature = None
    if below in finite and above in finite and math.isclose(best - below, above - best):
        h = x[best] - x[below]
        curvature = (finite[above] - 2 * finite[best] + finite[below]) / (h * h)
    z = float(stats.norm.ppf(0.5 + plan.level / 2))
    return Optimum(
        lr_star=plan.lr(best),
        lower=plan.lr(below),
        upper=plan.lr(above),
        se_log2=max((x[above] - x[below]) / (2 * z), MIN_SE_LOG2),
        curvature=curvature,
        method="grid",
        note=f"η* is the best grid point: {why}",
    )


def _transfer(plan: TuningPlan, axis: Literal["width", "depth"], curves: list[Curve]) -> Transfer:
    """The slope of log2 η* against log2 size by weighted least squares, with a z interval inflated by
    the Birge ratio √(χ²/dof) when the points scatter more than their errors say."""
    base_size = plan.base.width if axis == "width" else plan.base.depth

    def size(c: Curve) -> int:
        return c.shape.width if axis == "width" else c.shape.depth

    found = [c for c in curves if c.optimum is not None]
    unbracketed = [c for c in curves if c.state == "failed" and not c.crashed]
    sizes = [size(c) for c in found]
    lr_stars = [c.optimum.lr_star for c in found if c.optimum]
    ys = np.log2(lr_stars) if lr_stars else np.array([])
    spread = float(ys.max() - ys.min()) if len(ys) else 0.0
    slope = lower = upper = None
    if len(found) >= 2:
        xs = np.log2(np.array(sizes, dtype=float) / base_size)
        w = np.array([1 / c.optimum.se_log2**2 for c in found if c.optimum])
        x_bar = float(np.sum(w * xs) / np.sum(w))
        sxx = float(np.sum(w * (xs - x_bar) ** 2))
        slope = float(np.sum(w * (xs - x_bar) * (ys - np.sum(w * ys) / np.sum(w))) / sxx)
        intercept = float(np.sum(w * ys) / np.sum(w)) - slope * x_bar
        se = math.sqrt(1 / sxx)
        if len(found) > 2:
            chi2 = float(np.sum(w * (ys - intercept - slope * xs) ** 2))
            se *= max(1.0, math.sqrt(chi2 / (len(found) - 2)))
        z = float(stats.norm.ppf(0.5 + plan.level / 2))
        lower, upper = slope - z * se, slope + z * se
    base_curve = curves[0]
    largest = max(found, key=size) if found else None
    ratio = None
    if largest is not None and largest is not base_curve and base_curve.optimum and largest.optimum:
        b, top = base_curve.optimum.curvature, largest.optimum.curvature
        ratio = top / b if b and top and b > 0 else None
    if unbracketed:
        names = ", ".join(f"{axis} {size(c)}" for c in unbracketed)
        verdict: Literal["transfers", "drifts", "inconclusive"] = "drifts"
        reason = f"η* at {names} lies outside the LR range the sweep could bracket"
    elif len(found) < 2 or slope is None or lower is None or upper is None:
        verdict, reason = "inconclusive", f"fewer than two {axis}s have an η* (runs crashed: see the runs)"
    else:
        steady = spread <= ONE_STEP_LOG2 + 1e-9
        flat = lower <= 0 <= upper
        verdict = "transfers" if steady and flat else "drifts"
        reason = (
            f"η* spans {spread:.2f} log2 units (one ×√2 step is {ONE_STEP_LOG2}) across {axis}s "
            f"{min(sizes)}…{max(sizes)}; slope {slope:+.3f} per doubling, {plan.level:.0%} interval "
            f"[{lower:+.3f}, {upper:+.3f}] {'includes' if flat else 'excludes'} 0"
        )
    return Transfer(axis, sizes, lr_stars, slope, lower, upper, spread, ratio, verdict, reason)
