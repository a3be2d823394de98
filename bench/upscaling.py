"""μP upscaling against training from scratch: compute, LR transfer, and ladders (issue 19).

    python bench/upscaling.py --profile cpu   # 2-core CPU, widths 8…128 -> results/upscaling_cpu.txt

Real `trainer.train` runs in a process pool: from-scratch runs at every width, a ladder built by
upscaling (trainer/upscale.py, the product's warm_start "upscale"), upscaled continuations of several
lengths at the largest width, and the product's LR tuning (trainer.tuning) where each grid point is a ×2
upscaled continuation. Protocol and pass criteria: bench/PROTOCOL.md. Finished runs are cached next to
the report; final states (to upscale from) go to a work folder outside the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import predictor  # noqa: E402
import trainer  # noqa: E402
from bench.mup_transfer import machine  # noqa: E402
from bench.tuning_runs import curve_lines, default_jobs  # noqa: E402
from trainer.checkpoint import TrainState, load_state, save_state  # noqa: E402
from trainer.tuning import Observation, Point, Shape, TuningPlan  # noqa: E402
from trainer.tuning_result import TuningResult, run_locally  # noqa: E402
from trainer.upscale import WarmStart  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ONE_STEP = 0.5  # log2 of ×√2


@dataclass(frozen=True)
class Profile:
    spec: dict[str, object]
    lr: float
    steps: int
    ladder: tuple[int, ...]  # fitted widths, the smallest trained from scratch in both ladders
    target: int  # the held-out width, trained from scratch
    seeds: tuple[int, ...]
    noise: float
    continuation_steps: tuple[int, ...]  # upscaled continuations at the target width
    tuning_targets: tuple[int, ...]  # ×2 continuations whose η* is tuned
    device: str
    jobs: int


PROFILES = {
    "cpu": Profile(
        spec={
            "name": "accuracy-cpu",
            "n_layers": 2,
            "head_dim": 8,
            "context_length": 64,
            "parametrization": {"base_width": 16},
            "training": {"steps": 1000, "batch_tokens": 1024, "lr": 0.0166},
        },
        lr=0.0166,
        steps=1000,
        ladder=(8, 16, 32, 64),
        target=128,
        seeds=(0, 1),
        noise=1.0,
        continuation_steps=(125, 250, 500, 1000),
        tuning_targets=(32, 64, 128),
        device="cpu",
        jobs=default_jobs(),
    ),
}


@dataclass(frozen=True)
class Job:
    """One run: from scratch (parent None) or upscaled from the final state of run `parent`."""

    width: int
    seed: int
    steps: int
    lr: float
    parent: str | None = None
    noise: float = 0.0

    @property
    def key(self) -> str:
        return json.dumps([self.width, self.seed, self.steps, self.lr, self.parent, self.noise])


@cache
def _corpus(dataset_json: str) -> trainer.Corpus:
    return trainer.load_corpus(trainer.DatasetSpec.model_validate_json(dataset_json))


def _train(args: tuple[dict[str, Any], Job, str, str]) -> dict[str, Any]:
    spec_dict, job, device, states = args
    torch.set_num_threads(1)
    spec = trainer.ArchitectureSpec.model_validate(spec_dict)
    warm = None
    if job.parent is not None:
        warm = WarmStart(load_state(_state_path(states, job.parent)), job.noise)
    kept: list[TrainState] = []
    result = trainer.train(
        spec,
        job.width,
        seed=job.seed,
        steps=job.steps,
        lr=job.lr,
        corpus=_corpus(spec.dataset.model_dump_json()),
        device=device,
        warm_start=warm,
        checkpoint_at={job.steps},
        on_checkpoint=kept.append,
    )
    if kept:
        save_state(_state_path(states, job.key), kept[0])
    row = result.to_dict()
    row.pop("loss_curve", None)
    return row


def _state_path(states: str, key: str) -> Path:
    return Path(states) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


class Runner:
    """Trains jobs in a pool, each after its parent; finished rows cached in a JSON-lines file, final
    states in `states` (a cached parent whose state file is gone is trained again when a child needs it)."""

    def __init__(self, profile: Profile, cache_file: Path, states: Path) -> None:
        self.profile, self.cache_file, self.states = profile, cache_file, states
        self.done: dict[str, dict[str, Any]] = {}
        if cache_file.exists():
            for line in cache_file.read_text().splitlines():
                row = json.loads(line)
                self.done[row["key"]] = row
        self.trained = 0

    def _todo(self, jobs: list[Job]) -> list[Job]:
        todo: dict[str, Job] = {}
        stack = [j for j in jobs if j.key not in self.done]
        while stack:
            job = stack.pop()
            if job.key in todo:
                continue
            todo[job.key] = job
            if job.parent is not None and not _state_path(str(self.states), job.parent).exists():
                stack.append(Job(*json.loads(job.parent)))  # its final state is needed: train it (again)
        return list(todo.values())

    def run(self, pool: ProcessPoolExecutor, jobs: list[Job]) -> list[dict[str, Any]]:
        todo = self._todo(jobs)
        while todo:
            pending = {t.key for t in todo}
            ready = [j for j in todo if j.parent not in pending]
            ready.sort(key=lambda j: -j.width * j.width * j.steps)  # the longest first
            args = [(self.profile.spec, j, self.profile.device, str(self.states)) for j in ready]
            for job, row in zip(ready, pool.map(_train, args), strict=True):
                row = {"key": job.key, **row, "parent": job.parent, "noise": job.noise}
                self.done[job.key] = row
                with self.cache_file.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"  width {job.width:4d} seed {job.seed} steps {job.steps:5d} lr {job.lr:.4g}"
                    + (" upscaled" if job.parent else " scratch")
                    + f": val loss {row['val_loss']} ({row['wall_seconds']:.0f} s)",
                    flush=True,
                )
                self.trained += 1
            todo = [j for j in todo if j not in ready]
        return [self.done[j.key] for j in jobs]


def scratch(p: Profile, width: int, seed: int, steps: int | None = None, lr: float | None = None) -> Job:
    return Job(width, seed, steps or p.steps, p.lr if lr is None else lr)


def upscaled(p: Profile, parent: Job, width: int, steps: int | None = None, lr: float | None = None) -> Job:
    return Job(width, parent.seed, steps or p.steps, p.lr if lr is None else lr, parent.key, p.noise)


def warm_ladder(p: Profile, seed: int) -> list[Job]:
    rungs = [scratch(p, p.ladder[0], seed)]
    for width in p.ladder[1:]:
        rungs.append(upscaled(p, rungs[-1], width))
    return rungs


def flops(row: dict[str, Any]) -> float:
    return float(row["flops"])


def ladder_lines(
    name: str, rows: list[dict[str, Any]], target: list[dict[str, Any]]
) -> tuple[list[str], bool]:
    n = [float(r["n_params_non_embedding"]) for r in rows]
    losses = [float(r["val_loss"]) for r in rows]
    seeds = [int(r["seed"]) for r in rows]
    result = predictor.fit(np.array(n), np.array(losses), law="mu_scaling", seeds=np.array(seeds))
    n_target = float(target[0]["n_params_non_embedding"])
    measured = float(np.mean([r["val_loss"] for r in target]))
    prediction = result.predict(np.array([n_target]), level=0.9, interval="run", seeds=len(target))
    mean, low, high = float(prediction.mean[0]), float(prediction.lower[0]), float(prediction.upper[0])
    error = mean / measured - 1
    covered = low <= measured <= high
    total = sum(flops(r) for r in rows)
    return [
        f"{name}: fitted on {len(rows)} runs; compute {total:.3g} FLOPs in all",
        f"  predicted {mean:.4f} [{low:.4f}, {high:.4f}] at N {n_target:.3g}; measured {measured:.4f} "
        f"(mean of {len(target)} from scratch); error {error:+.2%}; "
        f"{'inside' if covered else 'OUTSIDE'} the interval",
    ], abs(error) <= 0.01 and covered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mupredict-upscaling")
    args = parser.parse_args(argv)
    p = PROFILES[args.profile]
    args.work.mkdir(parents=True, exist_ok=True)
    runner = Runner(p, RESULTS / f"upscaling_{args.profile}.runs.jsonl", args.work)
    started = time.perf_counter()
    spec = trainer.ArchitectureSpec.model_validate(p.spec)
    _corpus(spec.dataset.model_dump_json())
    with ProcessPoolExecutor(p.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        cold = {(w, s): scratch(p, w, s) for w in (*p.ladder, p.target) for s in p.seeds}
        warm = {s: warm_ladder(p, s) for s in p.seeds}
        continuations = {
            (steps, s): upscaled(p, cold[p.ladder[-1], s], p.target, steps)
            for steps in p.continuation_steps
            for s in p.seeds
        }
        rows = runner.run(
            pool, [*cold.values(), *[j for js in warm.values() for j in js], *continuations.values()]
        )
        by_key = {r["key"]: r for r in rows}

        def tune(points: list[Point]) -> list[Observation]:
            jobs = [
                upscaled(p, cold[pt.shape.width // 2, pt.seed], pt.shape.width, p.steps // 2, pt.lr)
                for pt in points
            ]
            out = []
            for pt, row in zip(points, runner.run(pool, jobs), strict=True):
                ok = (
                    row["status"] == "succeeded"
                    and row["val_loss"] is not None
                    and math.isfinite(row["val_loss"])
                )
                out.append(
                    Observation(
                        pt.shape,
                        pt.index,
                        pt.seed,
                        "ok" if ok else "diverged",
                        row["val_loss"] if ok else None,
                    )
                )
            return out

        plan = TuningPlan(
            center_lr=p.lr,
            base=Shape(p.tuning_targets[0], spec.n_layers),
            widths=p.tuning_targets[1:],
            seeds=p.seeds,
        )
        tuned: TuningResult = run_locally(plan, tune)

    lines = [
        f"μP upscaling (bench/upscaling.py --profile {args.profile}), "
        f"measured {time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {machine(p.device)}; {p.jobs} runs at once",
        f"recipe: {json.dumps(p.spec)}; lr {p.lr}, S = {p.steps} steps, seeds {list(p.seeds)}, "
        f"noise {p.noise}",
        "",
        f"Loss against compute at width {p.target} "
        f"(continuations of the from-scratch width-{p.ladder[-1]} run):",
    ]
    target_rows = [by_key[cold[p.target, s].key] for s in p.seeds]
    scratch_loss = float(np.mean([r["val_loss"] for r in target_rows]))
    scratch_flops = flops(target_rows[0])
    parent_flops = flops(by_key[cold[p.ladder[-1], p.seeds[0]].key])
    lines.append(f"  from scratch: {p.steps} steps, val loss {scratch_loss:.4f}, {scratch_flops:.3g} FLOPs")
    reached = None
    for steps in p.continuation_steps:
        cont = [by_key[continuations[steps, s].key] for s in p.seeds]
        loss = float(np.mean([r["val_loss"] for r in cont]))
        own = flops(cont[0])
        lines.append(
            f"  upscaled from {p.ladder[-1]}, {steps:5d} steps: val loss {loss:.4f}; {own:.3g} FLOPs "
            f"({own / scratch_flops:.2f}× from scratch), {own + parent_flops:.3g} with the parent's "
            f"({(own + parent_flops) / scratch_flops:.2f}×)"
        )
        if reached is None and loss <= scratch_loss:
            reached = steps
    ok2 = reached is not None and reached <= p.steps // 2
    lines.append(
        f"  first continuation at or below the from-scratch loss: {reached if reached else 'none'} steps"
    )
    lines.append(f"criterion 2 (reached within S/2 = {p.steps // 2} steps): {'PASS' if ok2 else 'FAIL'}")
    lines += ["", "LR transfer for ×2 upscaled continuations (S/2 steps each, product's tuning planner):"]
    for curve in tuned.curves:
        lines += curve_lines(curve, f"target width {curve.shape.width:4d}")
    check = tuned.transfer.get("width")
    ok1 = False
    if check is not None and check.slope is not None and check.lower is not None and check.upper is not None:
        ok1 = check.verdict == "transfers"
        lines.append(
            f"  slope of log2 η* per doubling of the target width {check.slope:+.3f}, 90% interval "
            f"[{check.lower:+.3f}, {check.upper:+.3f}]; spread {check.spread_log2:.2f} log2; "
            f"verdict {check.verdict}"
        )
    lines.append(f"criterion 1 (η* within one ×√2 step, slope interval ∋ 0): {'PASS' if ok1 else 'FAIL'}")
    lines += ["", f"Ladders on widths {list(p.ladder)}, predicting width {p.target} from scratch:"]
    cold_rows = [by_key[cold[w, s].key] for w in p.ladder for s in p.seeds]
    warm_rows = [by_key[j.key] for s in p.seeds for j in warm[s]]
    cold_lines, _ = ladder_lines("from-scratch ladder", cold_rows, target_rows)
    warm_lines, ok3 = ladder_lines("upscaled ladder", warm_rows, target_rows)
    lines += cold_lines + warm_lines
    lines.append(f"criterion 3 (the upscaled ladder within 1 % and covering): {'PASS' if ok3 else 'FAIL'}")
    lines += [
        "",
        f"{runner.trained} runs trained this invocation ({len(runner.done)} in the cache); "
        f"wall time {time.perf_counter() - started:.0f} s",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"upscaling_{args.profile}.txt").write_text(text)
    print(text, end="")
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
