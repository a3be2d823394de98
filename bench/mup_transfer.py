"""Evidence that μP works on real data, on a CPU, in a few minutes (issue 3, point 7).

    python bench/mup_transfer.py [--steps 1500] [--jobs 2]   # -> bench/results/mup_transfer_cpu.txt

1. LR transfer: a 5-point ×2 LR grid at the smallest and the largest width: the best LR is the same
   within one grid step.
2. Width ladder: widths ×1…×4 the base width at one fixed budget, with the LR the sweep picked at ×1
   (the μTransfer workflow): under μP the validation loss falls as width grows.

Data: the built-in corpus (Python standard library sources, byte-level), validation loss on its fixed
held-out windows, averaged over `--seeds` seeds (initialisation and batch order) because at a CPU budget
the width effect is a few hundredths of a nat. Every run is trainer.train with one torch thread;
`--jobs` runs that many at once.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer import ArchitectureSpec, train  # noqa: E402

WIDTHS = [16, 32, 48, 64]  # ×1 … ×4 the base width
LR_GRID = [0.0025, 0.005, 0.01, 0.02, 0.04]  # ×2 steps around the spec's LR


def make_spec(steps: int, lr: float) -> ArchitectureSpec:
    return ArchitectureSpec.model_validate(
        {
            "name": "mup-transfer",
            "n_layers": 2,
            # The capacity-limited CPU regime of the demo and the accuracy backtest: tiny widths with
            # 1.5M tokens each, so width, not optimisation noise, decides the loss.
            "head_dim": 8,
            "context_length": 64,
            "parametrization": {"mode": "mup", "base_width": 16},
            # Warmup-stable-decay to zero: the final anneal removes most of the LR noise, which at
            # this budget is as large as the width effect.
            "training": {
                "lr": lr,
                "steps": steps,
                "batch_tokens": 1024,
                "schedule": "wsd",
                "decay_fraction": 0.4,
            },
            "proxy_widths": WIDTHS,
        }
    )


def run(job: tuple[int, float, int, int]) -> tuple[int, float, float | None, float]:
    """(width, lr, val loss or None if diverged, seconds) of one trainer.train call."""
    width, lr, steps, seed = job
    torch.set_num_threads(1)
    result = train(make_spec(steps, lr), width, seed=seed, device="cpu")
    return width, lr, result.val_loss, result.wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=2, help="Seeds per (width, lr), averaged.")
    parser.add_argument(
        "--lr", type=float, default=None, help="LR of the width ladder (default: the sweep's best at ×1)."
    )
    parser.add_argument("--jobs", type=int, default=2, help="Runs at once, one torch thread each.")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[tuple[int, float], tuple[float | None, float]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:

        def measure(points: set[tuple[int, float]]) -> None:
            jobs = sorted(
                ((w, lr, args.steps, seed) for w, lr in points for seed in range(args.seeds)),
                key=lambda job: -job[0],  # widest first, so the pool ends on short runs
            )
            runs: dict[tuple[int, float], list[tuple[float | None, float]]] = {p: [] for p in points}
            for w, lr, loss, seconds in pool.map(run, jobs):
                runs[(w, lr)].append((loss, seconds))
            results.update({point: _mean(point_runs) for point, point_runs in runs.items()})

        ends = (WIDTHS[0], WIDTHS[-1])
        measure({(w, lr) for w in ends for lr in LR_GRID})  # 1. the LR sweep
        best = {}
        for w in ends:
            finite = {lr: loss for lr in LR_GRID if (loss := results[(w, lr)][0]) is not None}
            best[w] = min(finite, key=finite.__getitem__)
        # μTransfer: the LR tuned at the base width is used at every width.
        ladder_lr = best[WIDTHS[0]] if args.lr is None else args.lr
        measure({(w, ladder_lr) for w in WIDTHS} - set(results))  # 2. the rest of the width ladder

    spec = make_spec(args.steps, ladder_lr)
    lines = [
        f"μP transfer on real data, measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), shared "
        f"with other jobs; {args.jobs} runs at once, 1 torch thread each; torch {torch.__version__}",
        f"model: gpt, {spec.n_layers} layers, head_dim {spec.head_dim}, gelu, layernorm, context "
        f"{spec.context_length}; μP base width {spec.parametrization.base_width}",
        f"budget: {args.steps} steps × {spec.training.batch_tokens} tokens, warmup-stable-decay to 0; "
        "data: builtin corpus (Python stdlib sources, byte-level); loss: validation, nats/token, mean of "
        f"{args.seeds} seed(s); seconds: per run",
        "",
        "1. LR sweep (×2 grid)",
        "   lr        " + "".join(f"width {w:<6d}" for w in ends),
    ]
    for lr in LR_GRID:
        cells = "".join(f"{_fmt(results[(w, lr)][0])}{'*' if best[w] == lr else ' '}     " for w in ends)
        lines.append(f"   {lr:<9g} {cells}")
    shift = abs(math.log2(best[WIDTHS[-1]] / best[WIDTHS[0]]))
    lines.append(
        f"   best lr: {best[WIDTHS[0]]:g} at width {WIDTHS[0]}, {best[WIDTHS[-1]]:g} at width {WIDTHS[-1]} "
        f"-> {shift:.0f} grid step(s) apart (within one: {'yes' if shift <= 1 else 'NO'})"
    )
    source = "the best LR at ×1, transferred" if args.lr is None else "given by --lr"
    lines += ["", f"2. width ladder at lr {ladder_lr:g} ({source})"]
    ladder = [results[(w, ladder_lr)][0] for w in WIDTHS]
    for w, loss in zip(WIDTHS, ladder, strict=True):
        seconds = results[(w, ladder_lr)][1]
        lines.append(f"   width {w:4d} (×{w // WIDTHS[0]})  val loss {_fmt(loss)}  ({seconds:.0f} s)")
    falls = all(a is not None and b is not None and b < a for a, b in itertools.pairwise(ladder))
    drop = ladder[0] - ladder[-1] if ladder[0] is not None and ladder[-1] is not None else float("nan")
    lines.append(f"   falls with every width step: {'yes' if falls else 'NO'}; ×1 → ×4 drop {drop:.4f}")
    lines.append(
        f"\ntotal wall time {time.perf_counter() - started:.0f} s for {len(results) * args.seeds} runs"
    )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = ROOT / "bench" / "results" / "mup_transfer_cpu.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")


def _mean(point_runs: list[tuple[float | None, float]]) -> tuple[float | None, float]:
    """Mean loss (None if any seed diverged) and mean seconds over seeds."""
    losses = [loss for loss, _ in point_runs if loss is not None]
    mean_loss = sum(losses) / len(losses) if len(losses) == len(point_runs) else None
    return mean_loss, sum(seconds for _, seconds in point_runs) / len(point_runs)


def _fmt(loss: float | None) -> str:
    return "diverged" if loss is None else f"{loss:.4f}"


if __name__ == "__main__":
    main()
