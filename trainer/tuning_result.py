"""What an LR tuning found: η* per shape with its interval, and whether μP transfers it (the verdicts).

The analysis half of trainer.tuning (which plans the sweep): pure numpy and scipy. `analyze` turns a
plan's observations into a TuningResult; `run_locally` drives a whole sweep without a queue.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from trainer.tuning import (
    ONE_STEP_LOG2,
    Axis,
    Observation,
    Point,
    Shape,
    TuningPlan,
    by_shape,
    curve_status,
    point_values,
)

WINDOW_STEPS = 1.0  # the quadratic uses the points within one grid step of the best one: wider windows
# let an asymmetric basin (a cliff on the high side) pull the vertex away from the best point
MIN_SE_LOG2 = 0.05  # floor on an η* standard error (log2), so one very sharp curve cannot take all weight


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
    """Does η* move along one axis (width, depth or token horizon)?"""

    axis: Axis
    sizes: list[int]  # the widths (depths, horizons in steps) with an η*
    lr_stars: list[float]
    slope: float | None  # d log2 η* / d log2 size
    lower: float | None
    upper: float | None
    spread_log2: float  # max − min of log2 η* over the sizes
    curvature_ratio: float | None  # curvature at the largest size / at the base: > 1 is a sharpening basin
    verdict: Literal["transfers", "drifts", "inconclusive"]
    reason: str


@dataclass(frozen=True)
class HorizonRule:
    """η* at another token horizon: η*(S) = η*(S0) · (S / S0)^exponent, S in steps at a fixed batch.

    The optimal LR falls as a power law of the horizon, LR*(D) = B·D^(−β) (Bjorck et al. 2025,
    "Scaling Optimal LR Across Token Horizons", ICLR: abstract and Fig. 1, η* per horizon from a
    quadratic in log LR, as trainer.tuning_result._optimum does), and μP-style width rules do not remove
    it: Shigida, Hanin & Gromov (2026, §3.3 "Token horizon corrections", §4.6 and Fig. 9) measure
    η* ∝ iterations^(−1/3) at a fixed batch and build that correction into νGPT (Table 1, rule 1). Here
    the exponent is not assumed but measured: the horizon check's slope of log2 η* against log2 steps
    (the same as against log2 D at a fixed batch). The rule is anchored at the tuned η* of the base shape,
    so that at the tuned horizon the ladder trains at exactly η*, and it is `applied` (the ladder's LR is
    corrected) only when the check found a drift: a slope whose interval includes 0 with η* within one
    grid step is no evidence of one.
    """

    base_steps: int
    lr_star: float  # η* at base_steps
    exponent: float  # d log2 η* / d log2 steps (−β in Bjorck et al.)
    lower: float
    upper: float
    applied: bool
    horizons: list[int]  # the steps the exponent was fitted over

    def lr_at(self, steps: float) -> float:
        """The LR for a run of `steps`: corrected when the rule applies, else η* unchanged."""
        if not self.applied:
            return self.lr_star
        return self.lr_star * (steps / self.base_steps) ** self.exponent

    def mismatch_log2(self, steps: float, trained_steps: float) -> float:
        """How far (log2) the LR meant for `trained_steps` is from the one for `steps` under the
        fitted exponent, whether or not the rule is applied."""
        return abs(self.exponent * math.log2(steps / trained_steps))


@dataclass(frozen=True)
class TuningResult:
    status: Literal["running", "succeeded", "failed"]
    level: float
    lr_star: float | None  # at the base shape
    lower: float | None
    upper: float | None
    ladder_lr: float | None  # η* rounded to 3 significant digits: the LR the ladder trains at
    curves: list[Curve]
    transfer: dict[str, Transfer] = field(default_factory=dict)  # "width", "depth", "horizon" if checked
    reason: str | None = None
    horizon_rule: HorizonRule | None = None  # once the horizon check has settled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_lr(lr: float) -> float:
    """η* to 3 significant digits: the ladder's LR, a stable number to store and to read."""
    return float(f"{lr:.3g}")


def analyze(plan: TuningPlan, observations: Iterable[Observation]) -> TuningResult:
    """η* per shape with intervals, the transfer verdicts, and the tuning's status."""
    grouped = by_shape(observations)
    curves = [_curve(plan, shape, grouped.get(shape, [])) for shape in plan.shapes]
    base = curves[0]
    settled = all(c.state != "extend" for c in curves)
    transfer: dict[str, Transfer] = {}
    axes: tuple[Axis, ...] = ("width", "depth", "horizon")
    for axis in axes:
        on_axis = [c for c in curves[1:] if plan.axis_of(c.shape) == axis]
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
        horizon_rule=_horizon_rule(plan, optimum, transfer.get("horizon")),
    )


def _horizon_rule(plan: TuningPlan, optimum: Optimum | None, check: Transfer | None) -> HorizonRule | None:
    if optimum is None or check is None or check.slope is None or check.lower is None or check.upper is None:
        return None
    assert plan.base.steps is not None  # a plan with horizons has base steps (TuningPlan)
    return HorizonRule(
        base_steps=plan.base.steps,
        lr_star=optimum.lr_star,
        exponent=check.slope,
        lower=check.lower,
        upper=check.upper,
        applied=check.verdict == "drifts",
        horizons=check.sizes,
    )


def run_locally(plan: TuningPlan, train: Callable[[list[Point]], list[Observation]]) -> TuningResult:
    """Drive the whole sweep without a queue: train each round's points (in any order, in parallel if
    `train` likes), until every curve is settled. The benches use this; the service uses the queue."""
    observations: list[Observation] = []
    while points := plan.next_points(observations):
        observations += train(points)
    return analyze(plan, observations)


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
    values = point_values(observations)
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
    values = point_values(observations)
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


def _transfer(plan: TuningPlan, axis: Axis, curves: list[Curve]) -> Transfer:
    """The slope of log2 η* against log2 size by weighted least squares, with a z interval inflated by
    the Birge ratio √(χ²/dof) when the points scatter more than their errors say."""
    base_size = plan.size(plan.base, axis)

    def size(c: Curve) -> int:
        return plan.size(c.shape, axis)

    unit = " steps" if axis == "horizon" else ""
    found = sorted((c for c in curves if c.optimum is not None), key=size)
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
        names = ", ".join(f"{axis} {size(c)}{unit}" for c in unbracketed)
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
            f"{min(sizes)}…{max(sizes)}{unit}; slope {slope:+.3f} per doubling, {plan.level:.0%} interval "
            f"[{lower:+.3f}, {upper:+.3f}] {'includes' if flat else 'excludes'} 0"
        )
    return Transfer(axis, sizes, lr_stars, slope, lower, upper, spread, ratio, verdict, reason)
