"""Token horizons on real proxies: one warmup-stable-decay trunk per (width, seed) with a cooldown branch
per token budget (trainer/horizon.py), a `chinchilla` fit on the small corner of the (N, D) grid (and a
`kaplan` fit beside it in the cpu-long-r profile), and predictions for held-out larger points: larger N,
larger D, and both (the diagonal).

    python bench/horizon.py --profile cpu     # here: 2-core CPU, built-in corpus, 5 widths × 5 budgets

Protocol and pass criteria: bench/PROTOCOL.md, "Token horizons". Every branch is a real
`trainer.train` resumed from its trunk's checkpoint, exactly as a worker trains a token-horizon sweep
(app/worker.py); one independent run checks that a branch is the unbroken run of its budget. Finished
branches are appended to a JSON-lines cache next to the output, so a re-run reuses them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import predictor  # noqa: E402
import trainer  # noqa: E402
from predictor.frontier import compute_of, compute_optimal  # noqa: E402
from trainer.checkpoint import TrainState  # noqa: E402
from trainer.horizon import plan_horizons  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEVEL = 0.9


@dataclass(frozen=True)
class Profile:
    spec: dict[str, object]
    lr: float
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    budget_steps: tuple[int, ...]
    fit_widths: tuple[int, ...]  # N ≤ N_max
    fit_steps: tuple[int, ...]  # D ≤ D_max
    check: tuple[int, int, int]  # (width, seed, steps) also trained unbroken, to compare with its branch
    device: str
    laws: tuple[str, ...] = ("chinchilla",)  # each fitted on the same runs and judged on the same points


PROFILES = {
    # The accuracy backtest's CPU recipe (bench/accuracy.py) on a warmup-stable-decay schedule: a 20 %
    # cooldown (Hägele et al. 2024, §3.2), the LR tuned at width 16 for that backtest (0.0166).
    "cpu": Profile(
        spec={
            "name": "horizon-cpu",
            "n_layers": 2,
            "head_dim": 8,
            "context_length": 64,
            "parametrization": {"base_width": 16},
            "training": {
                "steps": 2000,
                "batch_tokens": 1024,
                "lr": 0.0166,
                "schedule": "wsd",
                "warmup_fraction": 0.05,
                "decay_fraction": 0.2,
            },
        },
        lr=0.0166,
        widths=(16, 24, 32, 48, 64),
        seeds=(0, 1),
        budget_steps=(125, 250, 500, 1000, 2000),
        fit_widths=(16, 24, 32, 48),
        fit_steps=(125, 250, 500, 1000),
        check=(32, 0, 500),
        device="cpu",
    ),
}
# Amendment 2 (bench/PROTOCOL.md): the same recipe at budgets where width matters (at ≤ 500 steps the
# widths end within a few % of each other), at the product's horizon-rule LR for these budgets.
_CPU = PROFILES["cpu"]
PROFILES["cpu-long"] = replace(
    _CPU,
    spec={
        **_CPU.spec,
        "name": "horizon-cpu-long",
        "training": {**_CPU.spec["training"], "steps": 8000, "lr": 0.0154},  # type: ignore[dict-item]
    },
    lr=0.0154,
    budget_steps=(500, 1000, 2000, 4000, 8000),
    fit_steps=(500, 1000, 2000, 4000),
    check=(32, 0, 1000),
)
# Amendment 3 (bench/PROTOCOL.md): the cpu-long grid with fresh seeds, judging both (N, D) laws.
PROFILES["cpu-long-r"] = replace(
    PROFILES["cpu-long"],
    seeds=(2, 3),
    check=(32, 2, 1000),
    laws=("chinchilla", "kaplan"),
)


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def train_grid(profile: Profile, cache: Path) -> list[dict[str, object]]:
    """Every (width, seed): its trunk, then a branch per budget from the trunk's checkpoint."""
    spec = trainer.ArchitectureSpec.model_validate(profile.spec)
    batch = spec.training.batch_tokens
    plan = plan_horizons(spec, [s * batch for s in profile.budget_steps])
    done: dict[tuple[int, int, int], dict[str, object]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["spec_hash"] == spec.spec_hash():
                done[(int(row["width"]), int(row["seed"]), int(row["steps"]))] = row
    for width in profile.widths:
        for seed in profile.seeds:
            if all((width, seed, steps) in done for steps in plan.steps):
                continue
            states: dict[int, TrainState] = {}
            started = time.perf_counter()
            trunk = trainer.train(
                spec,
                width,
                seed=seed,
                steps=plan.steps[-1],
                lr=profile.lr,
                device=profile.device,
                warmup_steps=plan.warmup_steps,
                checkpoint_at=set(plan.branch_points),
                on_checkpoint=lambda state, kept=states: kept.__setitem__(state.step, state),
                stop_after=plan.trunk_steps,
            )
            trunk_seconds = time.perf_counter() - started
            for steps, point in zip(plan.steps, plan.branch_points, strict=True):
                began = time.perf_counter()
                branch = trainer.train(
                    spec,
                    width,
                    seed=seed,
                    steps=steps,
                    lr=profile.lr,
                    device=profile.device,
                    warmup_steps=plan.warmup_steps,
                    resume_from=states[point],
                ).to_dict()
                branch.pop("loss_curve", None)
                row = {
                    "spec_hash": spec.spec_hash(),
                    **branch,
                    "trained_steps": steps - point,
                    "branch_seconds": time.perf_counter() - began,
                    "trunk_steps": trunk.steps,
                    "trunk_seconds": trunk_seconds,
                }
                with cache.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                done[(width, seed, steps)] = row
            print(f"  trained width {width:3d} seed {seed}: trunk and {len(plan.steps)} branches", flush=True)
    return [done[(w, s, t)] for w in profile.widths for s in profile.seeds for t in plan.steps]


def cost_lines(profile: Profile, runs: list[dict[str, object]]) -> tuple[list[str], bool]:
    spec = trainer.ArchitectureSpec.model_validate(profile.spec)
    batch = spec.training.batch_tokens
    lines = ["Cost of the branched grid, per (width, seed), in optimizer steps (FLOPs ∝ steps at a width):"]
    ok = True
    for k in (4, len(profile.budget_steps)):
        budgets = profile.budget_steps[:k] if k == 4 else profile.budget_steps
        plan = plan_horizons(spec, [s * batch for s in budgets])
        independent = sum(plan.steps)
        lines.append(
            f"  k = {k} budgets {list(plan.steps)}: trunk {plan.trunk_steps} + cooldowns "
            f"{plan.cost_steps - plan.trunk_steps} = {plan.cost_steps} steps = {plan.cost_ratio:.3f}× one "
            f"run of the longest budget ({plan.steps[-1]}); independent runs: {independent} steps "
            f"({independent / plan.steps[-1]:.3f}×)"
        )
        if k == 4:
            ok = plan.cost_ratio <= 1.5
    # Measured: the steps the runs actually trained, and the wall time against one full-length run's
    # estimate (the trunk's seconds per step × the longest budget).
    trained = statistics.mean(
        float(r["trunk_steps"]) + sum(float(b["trained_steps"]) for b in runs if _same(b, r))  # type: ignore[arg-type]
        for r in runs
        if r["steps"] == profile.budget_steps[-1]
    )
    ratio = []
    for r in runs:
        if r["steps"] != profile.budget_steps[-1]:
            continue
        seconds = float(r["trunk_seconds"]) + sum(float(b["branch_seconds"]) for b in runs if _same(b, r))  # type: ignore[arg-type]
        full = float(r["trunk_seconds"]) / float(r["trunk_steps"]) * profile.budget_steps[-1]  # type: ignore[arg-type]
        ratio.append(seconds / full)
    lines.append(
        f"  measured (k = {len(profile.budget_steps)}): {trained:.0f} steps trained per (width, seed); wall "
        f"time {statistics.mean(ratio):.3f}× a full-length run's estimate (mean over {len(ratio)}; it "
        "includes each branch's start-up and evaluation)"
    )
    return lines, ok


def _same(a: dict[str, object], b: dict[str, object]) -> bool:
    return a["width"] == b["width"] and a["seed"] == b["seed"]


def check_lines(profile: Profile, runs: list[dict[str, object]]) -> list[str]:
    """One budget trained unbroken, compared with its branch."""
    width, seed, steps = profile.check
    spec = trainer.ArchitectureSpec.model_validate(profile.spec)
    plan = plan_horizons(spec, [s * spec.training.batch_tokens for s in profile.budget_steps])
    unbroken = trainer.train(
        spec,
        width,
        seed=seed,
        steps=steps,
        lr=profile.lr,
        device=profile.device,
        warmup_steps=plan.warmup_steps,
    )
    branch = next(r for r in runs if (r["width"], r["seed"], r["steps"]) == (width, seed, steps))
    return [
        f"Branch against an unbroken run (width {width}, seed {seed}, {steps} steps, warmup "
        f"{plan.warmup_steps}): validation loss {float(branch['val_loss']):.6f} vs {unbroken.val_loss:.6f} "  # type: ignore[arg-type]
        f"(difference {abs(float(branch['val_loss']) - float(unbroken.val_loss or 0)):.1e})"  # type: ignore[arg-type]
    ]


def backtest(profile: Profile, runs: list[dict[str, object]], law: str) -> tuple[list[str], bool, float]:
    """Fit `law` on the grid's small corner; predict the held-out points. Returns the report lines,
    the verdict and the median |error|."""
    ok_runs = [r for r in runs if r["status"] == "succeeded"]
    fitted = [r for r in ok_runs if r["width"] in profile.fit_widths and r["steps"] in profile.fit_steps]
    x = np.array([[float(r["n_params_non_embedding"]), float(r["tokens"])] for r in fitted])  # type: ignore[arg-type]
    y = np.array([float(r["val_loss"]) for r in fitted])  # type: ignore[arg-type]
    seeds = np.array([int(r["seed"]) for r in fitted])  # type: ignore[call-overload]
    fit = predictor.fit(x, y, law=law, seeds=seeds)
    lines = [fit.report(), ""]
    held: dict[tuple[int, int], list[dict[str, object]]] = {}
    for r in ok_runs:
        if r["width"] not in profile.fit_widths or r["steps"] not in profile.fit_steps:
            held.setdefault((int(r["width"]), int(r["steps"])), []).append(r)  # type: ignore[call-overload]
    n_max = max(float(r["n_params_non_embedding"]) for r in fitted)  # type: ignore[arg-type]
    d_max = max(float(r["tokens"]) for r in fitted)  # type: ignore[arg-type]
    lines.append(
        f"{'width':>5} {'steps':>5} {'N':>9} {'×N':>5} {'D':>9} {'×D':>5} {'×C':>6} {'measured':>9} "
        f"{'seed sd':>7} {'predicted':>9} {int(LEVEL * 100)}% interval (2-run mean){'':>2} "
        f"{'rel err':>7} covered"
    )
    errors, covered = [], []
    for (width, steps), group in sorted(held.items()):
        n = float(group[0]["n_params_non_embedding"])  # type: ignore[arg-type]
        d = float(group[0]["tokens"])  # type: ignore[arg-type]
        losses = [float(r["val_loss"]) for r in group]  # type: ignore[arg-type]
        measured = statistics.mean(losses)
        p = fit.predict([n, d], level=LEVEL, interval="run", seeds=len(losses))
        error = (float(p.mean) - measured) / measured
        inside = float(p.lower) <= measured <= float(p.upper)
        errors.append(abs(error))
        covered.append(inside)
        lines.append(
            f"{width:>5} {steps:>5} {n:>9.3g} {n / n_max:>5.2f} {d:>9.3g} {d / d_max:>5.2f} "
            f"{compute_of(n, d) / compute_of(n_max, d_max):>6.2f} {measured:>9.4f} "
            f"{statistics.stdev(losses) if len(losses) > 1 else float('nan'):>7.4f} {float(p.mean):>9.4f} "
            f"[{float(p.lower):.4f}, {float(p.upper):.4f}]{'':>7} {100 * error:>+6.2f}% "
            f"{'yes' if inside else 'NO'}"
        )
    median = statistics.median(errors)
    inside = sum(covered)
    needed = len(covered) - 2 if len(covered) >= 9 else len(covered)
    ok = median <= 0.01 and inside >= needed
    frontier = compute_optimal(fit, [1e14, 1e15, 1e16], level=LEVEL)
    lines += [
        "",
        f"median |error| {100 * median:.2f}% (target ≤ 1 %); {inside} of {len(covered)} held-out means "
        f"inside their {int(LEVEL * 100)}% intervals (target ≥ {needed})",
        "",
        f"Compute-optimal frontier of this {law} fit (C = 6ND; Hoffmann et al. 2022 §3.3 Eq. (4)):",
    ]
    mean, lower, upper = (
        np.atleast_1d(v) for v in (frontier.loss.mean, frontier.loss.lower, frontier.loss.upper)
    )
    for i, c in enumerate(frontier.compute):
        lines.append(
            f"  C {c:.0e}: N* {frontier.n_params[i]:.3g} [{frontier.n_lower[i]:.3g}, "
            f"{frontier.n_upper[i]:.3g}], D* {frontier.tokens[i]:.3g} [{frontier.tokens_lower[i]:.3g}, "
            f"{frontier.tokens_upper[i]:.3g}], {frontier.tokens_per_parameter[i]:.1f} tokens/parameter, "
            f"loss {mean[i]:.4f} [{lower[i]:.4f}, {upper[i]:.4f}]"
        )
    return lines, ok, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Train the grid at this LR instead of the profile's (bench/PROTOCOL.md's amendment: the trunk "
        "LR the horizon check gives); its report and cache get an _lr<value> suffix.",
    )
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    suffix = ""
    if args.lr is not None:
        training = {**profile.spec["training"], "lr": args.lr}  # type: ignore[dict-item]
        profile = replace(profile, spec={**profile.spec, "training": training}, lr=args.lr)
        suffix = f"_lr{args.lr:g}"
    RESULTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    runs = train_grid(profile, RESULTS / f"horizon_{args.profile}{suffix}.runs.jsonl")
    cost, cost_ok = cost_lines(profile, runs)
    fit_lines: list[str] = []
    verdicts, medians = [], {}
    for law in profile.laws:
        lines, ok, medians[law] = backtest(profile, runs, law)
        if len(profile.laws) > 1:
            fit_lines += [f"=== law {law} ===", ""]
        fit_lines += [*lines, ""]
        label = "" if len(profile.laws) == 1 else f" {law}"
        verdicts.append(f"held-out accuracy{label} {'PASS' if ok else 'FAIL'}")
    if set(profile.laws) == {"chinchilla", "kaplan"}:  # amendment 3's criterion C
        below = medians["kaplan"] < medians["chinchilla"]
        verdicts.append(
            f"kaplan's median |error| below chinchilla's: {'yes' if below else 'no'} "
            f"({100 * medians['kaplan']:.2f}% vs {100 * medians['chinchilla']:.2f}%)"
        )
    lines = [
        f"mupredict token horizons, profile {args.profile}",
        f"command: python bench/horizon.py --profile {args.profile}"
        + (f" --lr {args.lr:g}" if args.lr is not None else ""),
        f"machine: {machine()}",
        f"spec: {json.dumps(profile.spec)}",
        f"grid: widths {list(profile.widths)} × budgets {list(profile.budget_steps)} steps × seeds "
        f"{list(profile.seeds)}; fitted on widths {list(profile.fit_widths)} × budgets "
        f"{list(profile.fit_steps)}; the rest held out",
        "",
        *cost,
        "",
        *check_lines(profile, runs),
        "",
        *fit_lines,
        f"verdict: cost {'PASS' if cost_ok else 'FAIL'}; {'; '.join(verdicts)}",
        f"wall time {time.perf_counter() - started:.0f} s (cached runs reused)",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"horizon_{args.profile}{suffix}.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
