"""Depth: does the tuned LR transfer across depth for α = 0, ½, 1, and does a ladder over depth extrapolate?

    python bench/depth.py --profile cpu   # 2-core CPU  -> results/depth_cpu.txt

Transfer: the product's tuning (trainer.tuning) at the base width, base depth and ×2/×4/×8 the depth,
once per depth exponent α (0 width-only μP, ½ Depth-μP [Tensor Programs VI], 1 CompleteP [Dey et al.
2025]). Backtest: CompleteP ladders over depth at fixed width, fitted on depths ≤ d_max with
`predictor.fit`, predicting 2× and 4× deeper. Protocol and pass criteria: bench/PROTOCOL.md. Finished
runs are cached next to the report (delete the cache to retrain).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mup_transfer import machine  # noqa: E402
from bench.tuning_runs import (  # noqa: E402
    CachedTuner,
    curve_lines,
    default_jobs,
    fit_rows,
    held_out,
    train_ladder,
    write_report,
)
from trainer import ArchitectureSpec  # noqa: E402
from trainer.tuning import ONE_STEP_LOG2, Point, Shape, TuningPlan  # noqa: E402
from trainer.tuning_result import TuningResult  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_ERROR = 0.015  # criterion 2: median |error| at 2× depth (bench/PROTOCOL.md)


@dataclass(frozen=True)
class Profile:
    spec: dict[str, Any]
    width: int  # the transfer check's width (the base width)
    depths: tuple[int, ...]  # the transfer check's depths; the first is the base
    alphas: tuple[float, ...]
    center_lr: float
    ladder_widths: tuple[int, ...]
    fit_depths: tuple[int, ...]
    held_out_depths: tuple[int, ...]  # 2× and 4× max(fit_depths)
    ladder_seeds: tuple[int, ...]
    jobs: int


PROFILES = {
    "cpu": Profile(
        spec={
            "name": "depth-cpu",
            "n_layers": 2,
            "head_dim": 8,
            "context_length": 64,
            "parametrization": {"base_width": 16, "base_depth": 2},
            "training": {"steps": 1000, "batch_tokens": 1024, "lr": 0.0166},
        },
        width=16,
        depths=(2, 4, 8, 16),
        alphas=(0.0, 0.5, 1.0),
        center_lr=0.0166,
        # Amended before the backtest ran (bench/PROTOCOL.md): width 16 only, for the session's time.
        ladder_widths=(16,),
        fit_depths=(1, 2, 3, 4),
        held_out_depths=(8, 16),
        ladder_seeds=(0, 1, 2),
        jobs=default_jobs(),
    ),
}


def spec_for(profile: Profile, alpha: float) -> ArchitectureSpec:
    spec = json.loads(json.dumps(profile.spec))
    spec["parametrization"]["depth_alpha"] = alpha
    return ArchitectureSpec.model_validate(spec)


def transfer_lines(alpha: float, result: TuningResult) -> tuple[list[str], bool | None, float | None]:
    """The report for one α, whether criterion 1 holds (None unless α = 1), and the base η*."""
    lines = [f"α = {alpha:g}: tuning {result.status}" + (f" ({result.reason})" if result.reason else "")]
    for curve in result.curves:
        lines += curve_lines(curve, f"depth {curve.shape.depth:3d}")
    base = result.curves[0].optimum
    base_lr = base.lr_star if base is not None else None
    transfer = result.transfer.get("depth")
    if transfer is None or transfer.slope is None or transfer.lower is None or transfer.upper is None:
        lines.append("  transfer across depth: not measured")
        return lines, (False if alpha == 1.0 else None), base_lr
    lines.append(
        f"  slope of log2 η* per doubling of depth: {transfer.slope:+.3f}, 90% interval "
        f"[{transfer.lower:+.3f}, {transfer.upper:+.3f}]; spread {transfer.spread_log2:.2f} log2"
    )
    lines.append(f"  verdict: {transfer.verdict} ({transfer.reason})")
    if alpha != 1.0:
        return lines, None, base_lr
    optima = [c.optimum for c in result.curves]
    within = base is not None and all(
        o is not None and abs(np.log2(o.lr_star / base.lr_star)) <= ONE_STEP_LOG2 for o in optima
    )
    ok = within and transfer.lower <= 0 <= transfer.upper
    lines.append(
        "  criterion 1 (every η* within one ×√2 step of the base, slope interval includes 0): "
        + ("PASS" if ok else "FAIL")
    )
    return lines, ok, base_lr


def ladder_lines(
    profile: Profile, tuner: CachedTuner, width: int, lr: float
) -> tuple[list[str], list[float], list[bool]]:
    """Fit one fixed-width ladder over the shallow depths; predict the held-out deeper ones."""
    spec = spec_for(profile, 1.0)
    depths = (*profile.fit_depths, *profile.held_out_depths)
    points = [Point(Shape(width, d), 0.0, s, lr) for d in depths for s in profile.ladder_seeds]
    by_depth = train_ladder(tuner, spec, points, lambda p: p.shape.depth)
    result = fit_rows([r for d in profile.fit_depths for r in by_depth[d]])
    params = ", ".join(f"{k} {v:.4g}" for k, v in result.params.items())
    lines = [
        f"width {width}, α = 1, lr {lr:.4g}: fitted on depths {list(profile.fit_depths)} "
        f"({result.n_points} runs): {params}"
    ]
    for d in profile.fit_depths:
        mean = statistics.fmean(float(r["val_loss"]) for r in by_depth[d] if r["val_loss"] is not None)
        n_depth = by_depth[d][0]["n_params_non_embedding"]
        lines.append(f"  depth {d:3d} (fitted): N {n_depth:>8}, mean loss {mean:.4f}")
    errors, covered = [], []
    for d in profile.held_out_depths:
        h = held_out(result, by_depth[d])
        if h.runs < len(by_depth[d]):
            lines.append(f"  depth {d:3d}: {len(by_depth[d]) - h.runs} run(s) diverged")
        errors.append(h.error)
        covered.append(h.inside)
        lines.append(
            f"  depth {d:3d} ({d // max(profile.fit_depths)}× d_max): N {h.n:.4g}, predicted {h.mean:.4f} "
            f"[{h.lower:.4f}, {h.upper:.4f}], measured {h.measured:.4f} (mean of {h.runs}), error "
            f"{h.error:+.2%}, {'inside' if h.inside else 'OUTSIDE'} the interval"
        )
    return lines, errors, covered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--jobs", type=int, default=None, help="Runs at once (default: the profile's).")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    out = RESULTS / f"depth_{args.profile}.txt"
    tuner = CachedTuner(RESULTS / f"depth_{args.profile}.runs.jsonl", "cpu", args.jobs or profile.jobs)
    started = time.perf_counter()
    lines = [
        f"Depth transfer and extrapolation (bench/depth.py --profile {args.profile}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine('cpu')}; {tuner.jobs} runs at once",
        f"recipe: {json.dumps(profile.spec)}",
        f"transfer plan: width {profile.width}, depths {list(profile.depths)} (base first), α "
        f"{list(profile.alphas)}, grid ×√2 around lr {profile.center_lr} (5 points, ≤ 4 extensions), "
        "seeds 0 and 1, 90% intervals",
        "",
    ]
    verdicts: list[bool] = []
    base_lr = None
    for alpha in profile.alphas:
        spec = spec_for(profile, alpha)
        base = Shape(profile.width, profile.depths[0])
        plan = TuningPlan(center_lr=profile.center_lr, base=base, depths=profile.depths[1:])
        body, ok, lr = transfer_lines(alpha, tuner.tune(spec, plan))
        if ok is not None:
            verdicts.append(ok)
        if alpha == 1.0:
            base_lr = lr
        lines += [*body, ""]
        print("\n".join(body), flush=True)
    if base_lr is None:
        lines.append("backtest: not run (the α = 1 base curve found no η*)")
        verdicts.append(False)
    else:
        lr = float(f"{base_lr:.4g}")
        two_x, all_covered = [], []
        for width in profile.ladder_widths:
            body, errors, covered = ladder_lines(profile, tuner, width, lr)
            two_x.append(abs(errors[0]))
            all_covered.append(covered[0])
            lines += [*body, ""]
            print("\n".join(body), flush=True)
        median = statistics.median(two_x)
        ok = median <= TARGET_ERROR and all(all_covered)
        verdicts.append(ok)
        lines.append(
            f"criterion 2 (median |error| at 2× depth ≤ {TARGET_ERROR:.1%}, every 2× mean inside its "
            f"interval): median {median:.2%}, covered {sum(all_covered)}/{len(all_covered)}: "
            + ("PASS" if ok else "FAIL")
        )
    write_report(tuner, lines, out, started, ROOT)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
