"""Accuracy backtest on real proxies: train a width ladder, fit on the small end, predict the large end.

    python bench/accuracy.py --profile cpu            # here: 2-core CPU, built-in corpus (30 runs)
    python bench/accuracy.py --profile gpu            # on a CUDA machine: widths to 1536

Every run is a real `trainer.train` on the default corpus with one μP recipe for all widths (no per-size
search), at the LR tuned at the base width first (the product's tuning, trainer.tuning: the bracketed ×√2
grid around the spec's lr, two seeds, η* rounded to 3 significant digits; its runs are shared with
bench/mup_transfer.py through one cache). The law is fitted with `predictor.fit` on the fitted widths
only (every seed a point); each held-out width is then predicted and compared with what training actually
reached: the mean over its seeds, since the law predicts the expected loss and one seed's loss differs
from the next by ~1 %.
Target: median relative error ≤ 1 % at ≥ 4× extrapolation in non-embedding parameters, with the 90 %
intervals covering.

Finished runs are appended to a JSON-lines cache next to the output, so a re-run (or a run cut short)
reuses them: delete the cache to retrain from scratch.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import predictor  # noqa: E402
import trainer  # noqa: E402
from bench.tuning_runs import CachedTuner, default_jobs  # noqa: E402
from trainer.tuning import Shape, TuningPlan  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Profile:
    spec: dict[str, object]
    fit_widths: tuple[int, ...]
    fit_seeds: tuple[int, ...]
    holdout_widths: tuple[int, ...]
    holdout_seeds: tuple[int, ...]
    device: str


PROFILES = {
    # Two layers, head size 8, byte-level built-in corpus, 1,500 steps × 1,024 tokens (1.5M tokens a run):
    # enough data that the proxies are capacity-limited, so width, not optimisation noise, sets the loss.
    # Seeds still move a run's loss by up to ~1 % (sd 0.3-1.1 % of the mean at widths 8-48), as much
    # as the target error: four seeds per fitted width and three per held-out width average that down.
    "cpu": Profile(
        spec={
            "name": "accuracy-cpu",
            "n_layers": 2,
            "head_dim": 8,
            "context_length": 64,
            "parametrization": {"base_width": 16},
            "training": {"steps": 1500, "batch_tokens": 1024, "lr": 0.01},
        },
        fit_widths=(8, 16, 24, 32, 40, 48),
        fit_seeds=(0, 1, 2, 3),
        holdout_widths=(96, 128),
        holdout_seeds=(0, 1, 2),
        device="cpu",
    ),
    # The same recipe scaled up for a GPU: widths to 1536, 4 layers, a larger batch and budget.
    "gpu": Profile(
        spec={
            "name": "accuracy-gpu",
            "n_layers": 4,
            "head_dim": 64,
            "context_length": 512,
            "training": {"steps": 2000, "batch_tokens": 65536},
        },
        fit_widths=(128, 192, 256, 320, 384),
        fit_seeds=(0, 1),
        holdout_widths=(768, 1024, 1536),
        holdout_seeds=(0, 1),
        device="cuda",
    ),
}


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def tune(profile: Profile, name: str, device: str, jobs: int) -> tuple[float, list[str]]:
    """η* at the base width, as `POST /v1/architectures/{id}/tuning` with `widths: []` finds it."""
    spec = trainer.ArchitectureSpec.model_validate(profile.spec)
    plan = TuningPlan(center_lr=spec.training.lr, base=Shape(spec.parametrization.base_width, spec.n_layers))
    tuner = CachedTuner(RESULTS / f"tuning_{name}.runs.jsonl", device, jobs)
    result = tuner.tune(spec, plan)
    if result.ladder_lr is None:
        raise SystemExit(f"the LR tuning failed: {result.reason}")
    curve = result.curves[0]
    points = ", ".join(
        f"{p.lr:.3g}: {p.loss_mean:.4f}" if p.loss_mean is not None else f"{p.lr:.3g}: diverged"
        for p in curve.points
    )
    lines = [
        f"LR tuned at width {curve.shape.width} (seeds 0, 1; mean validation loss per lr): {points}",
        f"η* = {result.lr_star:.4g} [{result.lower:.4g}, {result.upper:.4g}] (90%); the ladder trains at "
        f"lr {result.ladder_lr:g} (the spec's lr was {spec.training.lr:g})",
        "",
    ]
    return result.ladder_lr, lines


def train_ladder(profile: Profile, cache: Path, device: str, lr: float) -> list[dict[str, object]]:
    spec = trainer.ArchitectureSpec.model_validate(profile.spec)
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"lr": lr})})
    wanted = [(w, s) for w in profile.fit_widths for s in profile.fit_seeds]
    wanted += [(w, s) for w in profile.holdout_widths for s in profile.holdout_seeds]
    done: dict[tuple[int, int], dict[str, object]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["spec_hash"] == spec.spec_hash():
                done[(int(row["width"]), int(row["seed"]))] = row
    for width, seed in wanted:
        if (width, seed) in done:
            continue
        started = time.perf_counter()
        result = trainer.train(spec, width, seed=seed, device=device).to_dict()
        row = {"spec_hash": spec.spec_hash(), "width": width, "seed": seed, **result}
        row.pop("loss_curve", None)
        with cache.open("a") as f:
            f.write(json.dumps(row) + "\n")
        done[(width, seed)] = row
        print(
            f"  trained width {width:5d} seed {seed}: val loss {result['val_loss']:.4f} "
            f"({result['status']}, {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return [done[key] for key in wanted]


def backtest(profile: Profile, runs: list[dict[str, object]], level: float) -> tuple[list[str], bool]:
    """predictor.backtest on the ladder: the fitted widths' single runs, and each held-out width as the
    mean over its seeds. The law predicts the expected loss at N, and one run differs from another by
    seed noise alone (printed as the seed sd), so the interval asked for is the expected loss's."""
    fitted = [r for r in runs if r["width"] in profile.fit_widths and r["status"] == "succeeded"]
    x = [float(r["n_params_non_embedding"]) for r in fitted]  # type: ignore[arg-type]
    y = [float(r["val_loss"]) for r in fitted]  # type: ignore[arg-type]
    lines: list[str] = []
    singles: dict[int, list[tuple[int, float]]] = {}
    missing = []
    for width in profile.holdout_widths:
        held = [r for r in runs if r["width"] == width]
        singles[width] = [(int(r["seed"]), float(r["val_loss"])) for r in held if r["status"] == "succeeded"]  # type: ignore[call-overload, arg-type]
        if len(singles[width]) < len(held):
            lines.append(
                f"{width:>6} {len(held) - len(singles[width])} of {len(held)} run(s) did not succeed"
            )
        if not singles[width]:
            missing.append(width)
            continue
        x.append(float(held[0]["n_params_non_embedding"]))  # type: ignore[arg-type]
        y.append(statistics.mean(loss for _, loss in singles[width]))
    scored = [w for w in profile.holdout_widths if w not in missing]
    result = predictor.backtest(x, y, holdout=len(scored), law="mu_scaling", level=level, interval="expected")
    lines = [result.fit.report(), "", *lines]
    lines.append(
        f"{'width':>6} {'N (non-emb)':>12} {'×largest':>8} {'measured':>9} {'seed sd':>8} {'predicted':>9} "
        f"{int(level * 100)}% interval{'':>8} {'rel err':>8} covered"
    )
    for i, width in enumerate(scored):
        losses = [loss for _, loss in singles[width]]
        spread = statistics.stdev(losses) if len(losses) > 1 else float("nan")
        predicted, measured = float(result.predicted[i]), float(result.y[i])
        lines.append(
            f"{width:>6} {float(result.x[i]):>12.4g} {float(result.extrapolation_factor[i]):>8.1f} "
            f"{measured:>9.4f} {spread:>8.4f} {predicted:>9.4f} "
            f"[{float(result.lower[i]):.4f}, {float(result.upper[i]):.4f}] "
            f"{100 * abs(float(result.relative_error[i])):>7.2f}% {'yes' if result.covered[i] else 'NO'}"
        )
        per_seed = ", ".join(
            f"seed {seed}: {loss:.4f} ({100 * (predicted - loss) / loss:+.2f}%)"
            for seed, loss in singles[width]
        )
        lines.append(f"{'':>6} single runs, with the prediction's error against each: {per_seed}")
    errors = [abs(float(e)) for e in result.relative_error] + [float("inf")] * len(missing)
    covered = [bool(c) for c in result.covered] + [False] * len(missing)
    median = statistics.median(errors)
    largest = max((float(f) for f in result.extrapolation_factor), default=0.0)
    ok = median <= 0.01 and all(covered) and largest >= 4.0
    lines += [
        "",
        f"fitted on widths {list(profile.fit_widths)} × seeds {list(profile.fit_seeds)} "
        f"({len(fitted)} points); held out {list(profile.holdout_widths)} × seeds "
        f"{list(profile.holdout_seeds)} (measured: the mean over seeds)",
        f"median relative error {100 * median:.2f}% (target ≤ 1%); max {100 * max(errors):.2f}%",
        f"{sum(covered)}/{len(covered)} held-out losses inside their {int(level * 100)}% interval "
        "(target: all)",
        f"largest extrapolation {largest:.1f}× in non-embedding parameters (target ≥ 4×)",
        f"verdict: {'PASS' if ok else 'FAIL'}",
    ]
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--device", default=None, help="Override the profile's device.")
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="Tuning runs at once.")
    parser.add_argument("--out", type=Path, default=None, help="Report file (default bench/results/).")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    out = args.out or RESULTS / f"accuracy_{args.profile}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = out.with_suffix(".runs.jsonl")
    started = time.perf_counter()
    header = [
        f"mupredict accuracy backtest, profile {args.profile}",
        f"command: python bench/accuracy.py --profile {args.profile}",
        f"machine: {machine()}",
        f"spec: {json.dumps(profile.spec)}",
        "",
    ]
    print("\n".join(header), flush=True)
    device = args.device or profile.device
    lr, tuning_lines = tune(profile, args.profile, device, args.jobs)
    print("\n".join(tuning_lines), flush=True)
    runs = train_ladder(profile, cache, device, lr)
    lines, ok = backtest(profile, runs, args.level)
    lines = tuning_lines + lines
    lines.append(f"wall time of this invocation: {time.perf_counter() - started:.0f} s (cached runs reused)")
    text = "\n".join(header + lines) + "\n"
    print("\n".join(lines))
    out.write_text(text)
    print(f"written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
