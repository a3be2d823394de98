"""Does η* move with the token horizon? The product's horizon check (trainer.tuning), driven locally.

    python bench/horizon_lr.py --profile cpu   # 2-core CPU, width 16, 125…4,000 steps
                                               # -> results/horizon_lr_cpu.txt

At the base width of bench/horizon.py's recipe (warmup-stable-decay), the LR is tuned at six horizons with
the product's bracketed grid; the report gives η* per horizon with its interval, the slope of log2 η*
against log2 steps with its interval and verdict, the horizon rule the product would apply, a held-out
check of that rule (fitted without the longest horizon, it predicts η* there), and what the rule says
about bench/horizon.py's grid, which trained every budget at one LR. Protocol and pass criteria:
bench/PROTOCOL.md. Finished runs are cached next to the report (delete the cache to retrain).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.horizon import PROFILES as GRIDS  # noqa: E402
from bench.mup_transfer import machine  # noqa: E402
from bench.tuning_runs import CachedTuner, bench_parser, curve_lines, default_jobs, write_report  # noqa: E402
from trainer import ArchitectureSpec  # noqa: E402
from trainer.tuning import Shape, TuningPlan  # noqa: E402
from trainer.tuning_result import TuningResult  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ONE_STEP = 0.5  # log2 of ×√2: criterion 2's tolerance
LITERATURE_EXPONENT = -1 / 3  # Shigida, Hanin & Gromov 2026, §3.3 (after Bjorck et al. 2025's β = 0.32)


@dataclass(frozen=True)
class Profile:
    grid: str  # the bench/horizon.py profile whose recipe and budgets are checked
    width: int
    base_steps: int
    horizons: tuple[int, ...]  # besides the base; the longest is the held-out one of criterion 2
    seeds: tuple[int, ...]
    device: str
    jobs: int


PROFILES = {
    "cpu": Profile(
        grid="cpu",
        width=16,
        base_steps=500,
        horizons=(125, 250, 1000, 2000, 4000),
        seeds=(0, 1, 2),
        device="cpu",
        jobs=default_jobs(),
    ),
}


def plan_for(profile: Profile, spec: ArchitectureSpec, horizons: tuple[int, ...]) -> TuningPlan:
    return TuningPlan(
        center_lr=spec.training.lr,
        base=Shape(profile.width, spec.n_layers, profile.base_steps),
        horizons=horizons,
        seeds=profile.seeds,
    )


def curves(result: TuningResult) -> list[str]:
    lines = []
    for curve in sorted(result.curves, key=lambda c: c.shape.steps or 0):
        lines += curve_lines(curve, f"steps {curve.shape.steps:5d}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = bench_parser(__doc__, list(PROFILES)).parse_args(argv)
    profile = PROFILES[args.profile]
    grid = GRIDS[profile.grid]
    spec = ArchitectureSpec.model_validate(grid.spec)
    out = args.out or RESULTS / f"horizon_lr_{args.profile}.txt"
    tuner = CachedTuner(
        RESULTS / f"horizon_lr_{args.profile}.runs.jsonl", profile.device, args.jobs or profile.jobs
    )
    started = time.perf_counter()
    result = tuner.tune(spec, plan_for(profile, spec, profile.horizons))
    held_out = max(profile.horizons)
    fitted = tuner.tune(spec, plan_for(profile, spec, tuple(h for h in profile.horizons if h != held_out)))
    check, rule = result.transfer.get("horizon"), result.horizon_rule
    lines = [
        f"LR across token horizons (bench/horizon_lr.py --profile {args.profile}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine(profile.device)}; {tuner.jobs} runs at once",
        f"recipe: bench/horizon.py --profile {profile.grid}: {json.dumps(grid.spec)}",
        f"plan: width {profile.width}, base {profile.base_steps} steps, horizons {sorted(profile.horizons)} "
        f"steps ({spec.training.batch_tokens} tokens a step), grid ×√2 around lr {spec.training.lr} "
        f"(5 points, ≤ 4 extensions), seeds {list(profile.seeds)}, 90% intervals; whole runs at each horizon",
        "",
        f"tuning {result.status}" + (f" ({result.reason})" if result.reason else ""),
        *curves(result),
        "",
    ]
    ok1 = ok2 = False
    if check is None or check.slope is None or check.lower is None or check.upper is None or rule is None:
        lines.append("horizon check: not settled")
    else:
        lines += [
            f"slope of log2 η* per doubling of the horizon: {check.slope:+.3f}, 90% interval "
            f"[{check.lower:+.3f}, {check.upper:+.3f}]; spread {check.spread_log2:.2f} log2 over "
            f"{check.sizes[0]}…{check.sizes[-1]} steps",
            f"verdict: {check.verdict} ({check.reason})",
            f"the literature's exponent {LITERATURE_EXPONENT:+.3f} (Shigida et al. 2026 §3.3) is "
            + ("inside" if check.lower <= LITERATURE_EXPONENT <= check.upper else "outside")
            + " that interval",
            f"horizon rule: η*(S) = {rule.lr_star:.4g} · (S / {rule.base_steps})^{rule.exponent:+.3f}; "
            + ("applied to the ladder's LR" if rule.applied else "not applied (no drift found)"),
        ]
        unbracketed = [c for c in result.curves if c.state != "bracketed"]
        ok1 = not unbracketed and check.verdict != "inconclusive"
        lines.append(
            f"criterion 1 (every horizon bracketed, a conclusive verdict): {'PASS' if ok1 else 'FAIL'}"
        )
        measured = next(c.optimum for c in result.curves if c.shape.steps == held_out and c.optimum)
        small = fitted.horizon_rule
        if small is None:
            lines.append("criterion 2: the rule without the longest horizon did not settle: FAIL")
        else:
            exponent = small.exponent if small.applied else 0.0
            predicted = small.lr_star * (held_out / small.base_steps) ** exponent
            error = math.log2(predicted / measured.lr_star)
            ok2 = abs(error) <= ONE_STEP
            lines += [
                f"held out: fitted on {small.horizons} steps, slope {small.exponent:+.3f} "
                f"[{small.lower:+.3f}, {small.upper:+.3f}] ({'applied' if small.applied else 'not applied'})",
                f"  predicted η* at {held_out} steps {predicted:.4g}; measured {measured.lr_star:.4g} "
                f"[{measured.lower:.4g}, {measured.upper:.4g}]; error {error:+.2f} log2"
                + f" (uncorrected η* {small.lr_star:.4g}: "
                f"{math.log2(small.lr_star / measured.lr_star):+.2f} log2)",
                f"criterion 2 (the held-out η* within one ×√2 step, 0.5 log2): {'PASS' if ok2 else 'FAIL'}",
            ]
        lines += [
            "",
            f"what the rule says about bench/horizon.py --profile {profile.grid} "
            f"(all budgets at lr {grid.lr}):",
        ]
        base = next(c for c in result.curves if c.shape.steps == rule.base_steps)
        curvature = base.optimum.curvature if base.optimum and base.optimum.curvature else None
        for steps in grid.budget_steps:
            # Evaluated whether or not the rule is applied: the fitted exponent is the evidence.
            best = rule.lr_star * (steps / rule.base_steps) ** rule.exponent
            off = math.log2(grid.lr / best)
            cost = (
                f"; ≈ {0.5 * curvature * off * off:.4f} nats from the base basin's curvature"
                if curvature
                else ""
            )
            lines.append(
                f"  {steps:5d} steps: η* by the rule {best:.4g}; trained at ×{2**off:.2f} of it "
                f"({off:+.2f} log2){cost}"
            )
    lines.append("")
    write_report(tuner, lines, out, started, ROOT)
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
