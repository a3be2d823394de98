"""νGPT: does the tuned LR transfer across width, depth and token horizon under `nugpt` and not under `ngpt`,
and how does a νGPT design compare with a GPT of equal N at equal tokens?

    python bench/ngpt_transfer.py --profile cpu   # 2-core CPU, 16…128  -> results/ngpt_transfer_cpu.txt
    python bench/ngpt_transfer.py --profile cuda  # one GPU, 256…1024   -> results/ngpt_transfer_cuda.txt

Transfer: the product's tuning (trainer.tuning) once per parametrization, one plan holding the width,
depth and horizon axes around the base shape; the report gives η* per curve with its interval, and per
axis the slope of log2 η* per doubling with its interval and the product's verdict. Comparison (CPU
profile): a GPT of the same shape tuned at its base, then a ladder per design at its η*, fitted with
`predictor.fit` and ranked with `predictor.compare` at the GPT's width-128 N, which both also train as
a held-out check. Protocol and pass criteria: bench/PROTOCOL.md. Finished runs are cached next to the
report (delete the cache to retrain).
"""

from __future__ import annotations

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

import predictor  # noqa: E402
from bench.mup_transfer import machine  # noqa: E402
from bench.tuning_runs import (  # noqa: E402
    CachedTuner,
    bench_parser,
    curve_lines,
    default_jobs,
    fit_rows,
    held_out,
    train_ladder,
    write_report,
)
from trainer import ArchitectureSpec  # noqa: E402
from trainer.tuning import ONE_STEP_LOG2, Point, Shape, TuningPlan  # noqa: E402
from trainer.tuning_result import Transfer, TuningResult  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODES = ("nugpt", "ngpt")  # the candidate first; the original paper's scaling measured beside it
CRITERIA = ("width", "horizon")  # the axes with a pass criterion for nugpt (bench/PROTOCOL.md)


@dataclass(frozen=True)
class Comparison:
    gpt: dict[str, Any]  # the GPT design's spec (same shape, family "gpt")
    fit_widths: tuple[int, ...]
    held_out_width: int
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    spec: dict[str, Any]  # the νGPT recipe; parametrization.mode is set per run
    base: Shape
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    horizons: tuple[int, ...]
    center_lr: float
    device: str
    jobs: int
    compare: Comparison | None = None
    compile: bool | None = None


NGPT_TRAINING = {
    "schedule": "cosine",
    "warmup_fraction": 0.0,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
}

PROFILES = {
    "cpu": Profile(
        spec={
            "name": "ngpt-transfer-cpu",
            "family": "ngpt",
            "n_layers": 2,
            "head_dim": 8,
            "activation": "swiglu",
            "positions": "rope",
            "context_length": 64,
            "parametrization": {"base_width": 16, "base_depth": 2, "base_steps": 500},
            "training": {**NGPT_TRAINING, "steps": 500, "batch_tokens": 1024, "lr": 0.04},
        },
        base=Shape(16, 2, 500),
        widths=(32, 64, 128),
        depths=(4, 8),
        horizons=(250, 1000),
        center_lr=0.04,  # a 4-run pilot put the base η* near 0.04 (bench/PROTOCOL.md, amendment)
        device="cpu",
        jobs=default_jobs(),
        compare=Comparison(
            gpt={
                "name": "gpt-compare-cpu",
                "family": "gpt",
                "n_layers": 2,
                "head_dim": 8,
                "activation": "swiglu",
                "positions": "rope",
                "context_length": 64,
                "parametrization": {"base_width": 16},
                "training": {"steps": 500, "batch_tokens": 1024, "lr": 0.0166},
            },
            fit_widths=(16, 24, 32, 48, 64),
            held_out_width=128,
            seeds=(0, 1, 2),
        ),
    ),
    "cuda": Profile(
        spec={
            "name": "ngpt-transfer-cuda",
            "proxy_widths": [256, 512, 1024],
            "family": "ngpt",
            "n_layers": 4,
            "head_dim": 64,
            "activation": "swiglu",
            "positions": "rope",
            "context_length": 256,
            "parametrization": {"base_width": 256, "base_depth": 4, "base_steps": 300},
            "training": {**NGPT_TRAINING, "steps": 300, "batch_tokens": 16384, "lr": 0.01},
        },
        base=Shape(256, 4, 300),
        widths=(512, 1024),
        depths=(),
        horizons=(),
        center_lr=0.01,
        device="cuda",
        jobs=6,
        compile=False,  # 300-step runs: compiling would cost more than it saves
    ),
}


def spec_for(profile: Profile, mode: str) -> ArchitectureSpec:
    spec = json.loads(json.dumps(profile.spec))
    spec["parametrization"]["mode"] = mode
    spec["name"] = f"{spec['name']}-{mode}"
    return ArchitectureSpec.model_validate(spec)


def axis_lines(transfer: Transfer | None, axis: str) -> list[str]:
    if transfer is None or transfer.slope is None or transfer.lower is None or transfer.upper is None:
        return [f"  {axis}: not measured"]
    stars = ", ".join(f"{s}: {lr:.4g}" for s, lr in zip(transfer.sizes, transfer.lr_stars, strict=True))
    return [
        f"  {axis} (η* {stars}): slope of log2 η* per doubling {transfer.slope:+.3f}, 90% interval "
        f"[{transfer.lower:+.3f}, {transfer.upper:+.3f}]; spread {transfer.spread_log2:.2f} log2; "
        f"verdict {transfer.verdict} ({transfer.reason})"
    ]


def criterion(transfer: Transfer | None, base_lr: float | None) -> bool:
    """Every η* along the axis within one ×√2 step of the base η*, and the slope interval includes 0."""
    if transfer is None or base_lr is None or transfer.lower is None or transfer.upper is None:
        return False
    within = all(abs(np.log2(lr / base_lr)) <= ONE_STEP_LOG2 for lr in transfer.lr_stars)
    return within and transfer.lower <= 0 <= transfer.upper


def label(curve_shape: Shape) -> str:
    return f"width {curve_shape.width:4d} depth {curve_shape.depth:2d} steps {curve_shape.steps}"


def transfer_lines(
    profile: Profile, mode: str, result: TuningResult
) -> tuple[list[str], list[bool], float | None]:
    """The report for one parametrization, its criteria (nugpt only) and its base η*."""
    lines = [f"{mode}: tuning {result.status}" + (f" ({result.reason})" if result.reason else "")]
    for curve in result.curves:
        lines += curve_lines(curve, label(curve.shape))
    base = result.curves[0].optimum
    base_lr = base.lr_star if base is not None else None
    axes = [
        a
        for a, sizes in (("width", profile.widths), ("depth", profile.depths), ("horizon", profile.horizons))
        if sizes
    ]
    for axis in axes:
        lines += axis_lines(result.transfer.get(axis), axis)
    verdicts = []
    if mode == "nugpt":
        for axis in (a for a in CRITERIA if a in axes):
            ok = criterion(result.transfer.get(axis), base_lr)
            verdicts.append(ok)
            lines.append(
                f"  criterion ({axis}: every η* within one ×√2 step of the base, slope interval includes 0): "
                + ("PASS" if ok else "FAIL")
            )
    return lines, verdicts, base_lr


def ladder(
    tuner: CachedTuner, spec: ArchitectureSpec, plan: Comparison, lr: float
) -> tuple[predictor.FitResult, dict[int, list[dict[str, Any]]]]:
    """Train one design's ladder (fitted widths and the held-out one) at lr; fit the fitted widths."""
    widths = (*plan.fit_widths, plan.held_out_width)
    points = [Point(Shape(w, spec.n_layers), 0.0, s, lr) for w in widths for s in plan.seeds]
    by_width = train_ladder(tuner, spec, points, lambda p: p.shape.width)
    return fit_rows([r for w in plan.fit_widths for r in by_width[w]]), by_width


def comparison_lines(profile: Profile, tuner: CachedTuner, nugpt_lr: float) -> list[str]:
    plan = profile.compare
    assert plan is not None
    gpt = ArchitectureSpec.model_validate(plan.gpt)
    result = tuner.tune(
        gpt, TuningPlan(center_lr=gpt.training.lr, base=Shape(profile.base.width, gpt.n_layers))
    )
    lines = [f"GPT design ({json.dumps(plan.gpt)}): base tuning {result.status}"]
    lines += curve_lines(result.curves[0], f"width {profile.base.width:4d}")
    optimum = result.curves[0].optimum
    if optimum is None:
        return [*lines, "comparison: not run (the GPT's base curve found no η*)"]
    designs = {
        "nugpt": (spec_for(profile, "nugpt"), float(f"{nugpt_lr:.4g}")),
        "gpt": (gpt, float(f"{optimum.lr_star:.4g}")),
    }
    fits, ladders = {}, {}
    for name, (spec, lr) in designs.items():
        fits[name], ladders[name] = ladder(tuner, spec, plan, lr)
        params = ", ".join(f"{k} {v:.4g}" for k, v in fits[name].params.items())
        lines.append(
            f"{name} ladder at lr {lr:.4g}: widths {list(plan.fit_widths)} × seeds {list(plan.seeds)} fitted "
            f"({fits[name].n_points} runs): {params}"
        )
        for w in plan.fit_widths:
            losses = [float(r["val_loss"]) for r in ladders[name][w] if r["val_loss"] is not None]
            lines.append(
                f"  width {w:4d}: N {ladders[name][w][0]['n_params_non_embedding']:>8}, "
                f"mean loss {statistics.fmean(losses):.4f} ({len(losses)} runs)"
            )
    held = plan.held_out_width
    n_query = float(ladders["gpt"][held][0]["n_params_non_embedding"])
    n_largest = float(ladders["gpt"][max(plan.fit_widths)][0]["n_params_non_embedding"])
    tokens = gpt.training.steps * gpt.training.batch_tokens
    ranked = predictor.compare([fits["nugpt"], fits["gpt"]], n_query, level=0.9)
    lines.append(
        f"at N = {n_query:,.0f} (the GPT's width {held}; {n_query / n_largest:.1f}× "
        f"its largest fitted N), {tokens:,} tokens each, expected loss with 90% intervals:"
    )
    for k, name in enumerate(designs):
        p = ranked.predictions[k]
        lines.append(
            f"  {name:6s} {float(p.mean):.4f} [{float(p.lower):.4f}, {float(p.upper):.4f}]  rank "
            f"{ranked.ranks[k]}, P(best) {ranked.probability_best[k]:.3f}"
        )
    lines.append(
        f"  runs paired by seed: {int(ranked.paired_runs[0, 1])}, correlation {ranked.correlation[0, 1]:+.2f}"
    )
    measured = {}
    for name in designs:
        h = held_out(fits[name], ladders[name][held])
        measured[name] = h.measured
        lines.append(
            f"  held out, {name} width {held} (its own N {h.n:,.0f}): predicted {h.mean:.4f} [{h.lower:.4f}, "
            f"{h.upper:.4f}] for a {h.runs}-run mean, measured {h.measured:.4f}, error "
            f"{h.error:+.2%}, {'inside' if h.inside else 'OUTSIDE'} the interval"
        )
    predicted_best = list(designs)[ranked.best]
    measured_best = min(measured, key=measured.__getitem__)
    lines.append(
        f"  predicted best: {predicted_best}; measured best at width {held}: {measured_best} "
        f"({'agree' if predicted_best == measured_best else 'DISAGREE'})"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = bench_parser(__doc__, list(PROFILES)).parse_args(argv)
    profile = PROFILES[args.profile]
    out = args.out or RESULTS / f"ngpt_transfer_{args.profile}.txt"
    cache = out.with_suffix(".runs.jsonl")
    tuner = CachedTuner(cache, profile.device, args.jobs or profile.jobs, compile=profile.compile)
    started = time.perf_counter()
    b = profile.base
    lines = [
        f"νGPT LR transfer (bench/ngpt_transfer.py --profile {args.profile}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine(profile.device)}; {tuner.jobs} runs at once",
        f"recipe: {json.dumps(profile.spec)}",
        f"plan: base width {b.width}, depth {b.depth}, {b.steps} steps; widths {list(profile.widths)}, "
        f"depths {list(profile.depths)}, horizons {list(profile.horizons)} steps; grid ×√2 around lr "
        f"{profile.center_lr} (5 points, ≤ 4 extensions), seeds 0 and 1, 90% intervals",
        "",
    ]
    verdicts: list[bool] = []
    nugpt_lr = None
    for mode in MODES:
        plan = TuningPlan(
            center_lr=profile.center_lr,
            base=b,
            widths=profile.widths,
            depths=profile.depths,
            horizons=profile.horizons,
        )
        body, ok, base_lr = transfer_lines(profile, mode, tuner.tune(spec_for(profile, mode), plan))
        verdicts += ok
        if mode == "nugpt":
            nugpt_lr = base_lr
        lines += [*body, ""]
        print("\n".join(body), flush=True)
    if profile.compare is not None:
        if nugpt_lr is None:
            body = ["comparison: not run (the nugpt base curve found no η*)"]
        else:
            body = comparison_lines(profile, tuner, nugpt_lr)
        lines += [*body, ""]
        print("\n".join(body), flush=True)
    lines.append(f"criteria: {sum(verdicts)}/{len(verdicts)} PASS")
    write_report(tuner, lines, out, started, ROOT)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
