"""The LR tuning planner and its analysis (trainer/tuning.py, tuning_result.py), on synthetic curves.

Each synthetic curve is a basin in log2 η with a known minimum, seed offsets (a seed shifts its whole
curve) and Gaussian noise, so the tests can check that the grid is extended toward the minimum, that
η* and its interval recover the truth at the stated rate, and that the transfer verdict follows the
truth in both directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from trainer.tuning import Observation, Point, Shape, TuningPlan, curve_status
from trainer.tuning_result import analyze, round_lr, run_locally

BASE = Shape(32, 2)


def basin(
    optimum: Callable[[Shape], float],
    *,
    curvature: float = 0.06,
    noise: float = 0.0,
    seed_offset: float = 0.0,
    diverge_above: float = math.inf,
    rng: np.random.Generator | None = None,
) -> Callable[[list[Point]], list[Observation]]:
    """A trainer stand-in: loss = 2 + curvature·(log2 η − log2 η*)² + seed offset + noise."""
    rng = rng or np.random.default_rng(0)

    def train(points: list[Point]) -> list[Observation]:
        out = []
        for p in points:
            if p.lr > diverge_above:
                out.append(Observation(p.shape, p.index, p.seed, "diverged"))
                continue
            distance = math.log2(p.lr) - math.log2(optimum(p.shape))
            loss = 2 + curvature * distance**2 + seed_offset * p.seed + noise * rng.standard_normal()
            out.append(Observation(p.shape, p.index, p.seed, "ok", loss))
        return out

    return train


def test_a_centred_grid_brackets_at_once_and_recovers_the_optimum() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1))
    rounds = []

    def train(points: list[Point]) -> list[Observation]:
        rounds.append(points)
        return basin(lambda s: 0.012, noise=0.002)(points)

    result = run_locally(plan, train)
    assert len(rounds) == 1 and len(rounds[0]) == 5 * 2  # five grid points × two seeds, no extension
    assert sorted({p.lr for p in rounds[0]}) == pytest.approx(
        [0.01 * math.sqrt(2) ** k for k in range(-2, 3)]
    )
    assert result.status == "succeeded"
    assert result.lower is not None and result.upper is not None and result.lr_star is not None
    assert result.lower < result.lr_star < result.upper  # coverage itself: the calibration test below
    assert result.lr_star == pytest.approx(0.012, rel=0.1)
    assert result.ladder_lr == round_lr(result.lr_star) and len(f"{result.ladder_lr:.10g}") <= 6
    assert result.curves[0].optimum is not None and result.curves[0].optimum.method == "quadratic"
    assert result.transfer == {}  # no larger widths: transfer not checked


def test_the_grid_extends_toward_an_edge_minimum_until_it_is_bracketed() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1))
    observations: list[Observation] = []
    extended = []
    train = basin(lambda s: 0.09)  # above the initial grid's top (0.02)
    while points := plan.next_points(observations):
        extended.append(sorted({p.index for p in points}))
        observations += train(points)
    assert extended[0] == [-2, -1, 0, 1, 2]
    assert extended[1:] == [[3, 4], [5, 6], [7, 8]]  # two ×√2 steps a round, toward the minimum
    result = analyze(plan, observations)
    assert result.status == "succeeded" and result.curves[0].extensions == 3
    assert result.lr_star == pytest.approx(0.09, rel=0.02)


def test_a_minimum_beyond_the_extension_cap_fails_with_a_reason_that_names_the_fix() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1), max_extensions=1)
    result = run_locally(plan, basin(lambda s: 1.0))
    assert result.status == "failed" and result.lr_star is None
    assert result.reason is not None
    assert "not bracketed" in result.reason and "max_extensions" in result.reason


def test_a_diverged_neighbour_is_approached_by_half_steps() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1))
    observations: list[Observation] = []
    # The loss falls all the way to the edge of stability at 0.015: 0.0141 is the best finite grid point.
    train = basin(lambda s: 0.03, diverge_above=0.015)
    while points := plan.next_points(observations):
        observations += train(points)
    tried = sorted({o.index for o in observations})
    assert 1.5 in tried  # the half step between the best point (1) and the diverged one (2)
    result = analyze(plan, observations)
    assert result.status == "succeeded" and result.lr_star is not None
    assert result.lr_star <= 0.015  # never past the LR that diverged
    assert result.curves[0].points[-1].diverged == 2


def test_when_every_lr_diverges_the_grid_moves_down() -> None:
    plan = TuningPlan(center_lr=1.0, base=BASE, seeds=(0, 1), grid_factor=2.0)
    result = run_locally(plan, basin(lambda s: 0.02, diverge_above=0.1))
    assert result.status == "succeeded" and result.lr_star == pytest.approx(0.02, rel=0.1)


def test_crashed_runs_end_the_curve_instead_of_asking_for_them_again() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1))
    crashed = [Observation(BASE, float(i), s, "failed") for i in range(-2, 3) for s in (0, 1)]
    status = curve_status(plan, crashed)
    assert status.state == "failed" and status.crashed and status.new_indices == []
    assert plan.next_points(crashed) == []
    assert analyze(plan, crashed).status == "failed"


def test_seed_offsets_do_not_widen_the_interval() -> None:
    """A seed moves its whole curve; the fit removes that, so the interval stays as narrow."""
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1, 2))
    widths = []
    for offset in (0.0, 0.2):
        result = run_locally(plan, basin(lambda s: 0.01, noise=0.003, seed_offset=offset))
        assert result.upper is not None and result.lower is not None
        widths.append(math.log2(result.upper / result.lower))
    assert widths[1] == pytest.approx(widths[0], rel=1e-6)


def test_the_interval_covers_the_true_optimum_at_about_its_level() -> None:
    """Calibration by simulation: 300 noisy sweeps; the 90 % interval must cover η* 80–98 % of the time."""
    rng = np.random.default_rng(7)
    plan = TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1))
    covered = 0
    trials = 300
    for _ in range(trials):
        truth = 0.01 * 2 ** rng.uniform(-0.5, 0.5)
        result = run_locally(plan, basin(lambda s, t=truth: t, noise=0.004, seed_offset=0.01, rng=rng))
        assert result.lower is not None and result.upper is not None
        covered += result.lower <= truth <= result.upper
    assert 0.80 <= covered / trials <= 0.98, covered / trials


@pytest.mark.parametrize(
    ("exponent", "verdict"),
    [(0.0, "transfers"), (-1.0, "drifts")],
    ids=["mup-like: η* constant", "sp-like: η* ∝ 1/width"],
)
def test_the_transfer_verdict_follows_the_truth(exponent: float, verdict: str) -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, widths=(128, 256), seeds=(0, 1))
    result = run_locally(
        plan, basin(lambda s: 0.01 * (s.width / BASE.width) ** exponent, noise=0.002, seed_offset=0.01)
    )
    transfer = result.transfer["width"]
    assert transfer.verdict == verdict, transfer.reason
    assert transfer.sizes == [32, 128, 256]
    assert transfer.lower is not None and transfer.upper is not None and transfer.slope is not None
    assert transfer.lower <= exponent <= transfer.upper
    if verdict == "drifts":
        assert transfer.upper < 0 and transfer.spread_log2 > 2


def test_a_sharpening_basin_shows_in_the_curvature_ratio() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, widths=(128, 256), seeds=(0, 1))
    observations: list[Observation] = []
    while points := plan.next_points(observations):
        for shape in {p.shape for p in points}:
            sharp = 0.05 * shape.width / BASE.width  # the basin gets 8× sharper over ×8 width
            observations += basin(lambda s: 0.01, curvature=sharp)([p for p in points if p.shape == shape])
    ratio = analyze(plan, observations).transfer["width"].curvature_ratio
    assert ratio == pytest.approx(8, rel=0.05)


def test_depth_shapes_are_swept_at_the_base_width() -> None:
    plan = TuningPlan(center_lr=0.01, base=BASE, widths=(64,), depths=(4, 8), seeds=(0, 1))
    assert plan.shapes == (BASE, Shape(64, 2), Shape(32, 4), Shape(32, 8))
    result = run_locally(plan, basin(lambda s: 0.01 * (s.depth / 2) ** -0.5, noise=0.001))
    assert set(result.transfer) == {"width", "depth"}
    assert result.transfer["width"].verdict == "transfers"
    assert result.transfer["depth"].verdict == "drifts"
    assert result.transfer["depth"].slope == pytest.approx(-0.5, abs=0.1)


def test_horizon_shapes_are_swept_at_the_base_width_and_depth() -> None:
    base = Shape(32, 2, 1000)
    plan = TuningPlan(center_lr=0.01, base=base, widths=(64,), horizons=(250, 1000, 4000), seeds=(0, 1))
    assert plan.shapes == (base, Shape(64, 2, 1000), Shape(32, 2, 250), Shape(32, 2, 4000))
    assert [plan.axis_of(s) for s in plan.shapes] == [None, "width", "horizon", "horizon"]


@pytest.mark.parametrize(
    ("exponent", "verdict"),
    [(0.0, "transfers"), (-0.3, "drifts")],
    ids=["η* constant in the horizon", "η* ∝ steps^−0.3 (Bjorck et al.)"],
)
def test_the_horizon_check_fits_the_exponent_and_corrects_only_a_drift(exponent: float, verdict: str) -> None:
    base = Shape(32, 2, 1000)
    plan = TuningPlan(center_lr=0.01, base=base, horizons=(250, 4000, 16000), seeds=(0, 1))
    truth = lambda s: 0.012 * ((s.steps or 1000) / 1000) ** exponent  # noqa: E731
    result = run_locally(plan, basin(truth, noise=0.001, seed_offset=0.01))
    check = result.transfer["horizon"]
    assert check.sizes == [250, 1000, 4000, 16000]
    assert check.verdict == verdict, check.reason
    assert check.lower is not None and check.upper is not None
    assert check.lower <= exponent <= check.upper
    assert "steps" in check.reason
    rule = result.horizon_rule
    assert rule is not None and rule.base_steps == 1000 and rule.applied == (verdict == "drifts")
    assert rule.lr_at(1000) == result.lr_star  # anchored at the tuned η*
    if rule.applied:
        # Extrapolated to 4× the longest horizon checked, within the truth's reach.
        assert rule.lr_at(64000) == pytest.approx(truth(Shape(32, 2, 64000)), rel=0.25)
        assert rule.mismatch_log2(4000, 1000) == pytest.approx(0.6, abs=0.15)
    else:
        assert rule.lr_at(64000) == result.lr_star
    # The width axis is unaffected by the horizon shapes (none was asked for).
    assert set(result.transfer) == {"horizon"}


def test_a_tuning_without_a_horizon_check_has_no_horizon_rule() -> None:
    result = run_locally(TuningPlan(center_lr=0.01, base=BASE, seeds=(0, 1)), basin(lambda s: 0.01))
    assert result.horizon_rule is None and "horizon" not in result.transfer


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"horizons": (500,)}, "base shape's steps"),
        ({"base": Shape(32, 2, 1000), "horizons": (0,)}, "positive step counts"),
        ({"grid_points": 2}, "cannot bracket"),
        ({"grid_factor": 1.0}, "grid_factor"),
        ({"seeds": (0, 0)}, "at least two different seeds"),
        ({"center_lr": -1.0}, "positive"),
    ],
)
def test_plans_that_cannot_work_are_refused_with_the_fix(fields: dict, message: str) -> None:
    args = {"center_lr": 0.01, "base": BASE, "seeds": (0, 1), **fields}
    with pytest.raises(ValueError, match=message):
        TuningPlan(**args)
