"""The product's LR tuning (trainer.tuning), driven locally for the benches: real `trainer.train` runs in a
process pool, each finished run appended to a JSON-lines cache so that an interrupted bench resumes and
two benches with the same recipe share their runs (the accuracy backtest reuses the μP base curve).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

import predictor
import trainer
from predictor.backtest import HeldOut, predict_held_out
from trainer.tuning import Observation, Point, TuningPlan
from trainer.tuning_result import Curve, TuningResult, run_locally


@cache
def _corpus(dataset_json: str) -> trainer.Corpus:
    return trainer.load_corpus(trainer.DatasetSpec.model_validate_json(dataset_json))


def _train(job: tuple[dict[str, Any], Point, str, int, bool | None]) -> dict[str, Any]:
    spec_dict, point, device, threads, compile_model = job
    torch.set_num_threads(threads)
    spec = trainer.ArchitectureSpec.model_validate(spec_dict).at_depth(point.shape.depth)
    corpus = _corpus(spec.dataset.model_dump_json())
    result = trainer.train(
        spec,
        point.shape.width,
        seed=point.seed,
        lr=point.lr,
        corpus=corpus,
        device=device,
        steps=point.shape.steps,
        compile=compile_model,
    ).to_dict()
    result.pop("loss_curve", None)
    return result


def run_key(spec: trainer.ArchitectureSpec, point: Point) -> str:
    return json.dumps(
        [spec.spec_hash(), point.shape.width, point.shape.depth, point.seed, steps_of(spec, point), point.lr]
    )


def steps_of(spec: trainer.ArchitectureSpec, point: Point) -> int:
    return spec.training.steps if point.shape.steps is None else point.shape.steps


class CachedTuner:
    """Train a plan's points in a pool, reusing (and appending to) the cache file."""

    def __init__(
        self,
        cache_file: Path,
        device: str,
        jobs: int,
        threads: int = 1,
        compile: bool | None = None,
        cached_only: bool = False,
    ) -> None:
        self.cache_file, self.device, self.jobs, self.threads = cache_file, device, jobs, threads
        self.cached_only = cached_only  # read a finished bench's runs back; a missing one is an error
        self.compile = compile  # None: trainer.train's default (on for CUDA); short GPU runs skip it
        self.done: dict[str, dict[str, Any]] = {}
        if cache_file.exists():
            for line in cache_file.read_text().splitlines():
                row = json.loads(line)
                self.done[row["key"]] = row
        self.trained = 0
        self.seconds = 0.0

    def tune(self, spec: trainer.ArchitectureSpec, plan: TuningPlan) -> TuningResult:
        context = multiprocessing.get_context("spawn")  # CUDA and torch threads do not survive fork
        # Build the corpus cache once, before the pool's processes each look for it.
        _corpus(spec.dataset.model_dump_json())
        with ProcessPoolExecutor(self.jobs, mp_context=context) as pool:
            return run_locally(plan, lambda points: self._observe(pool, spec, points))

    def train(self, spec: trainer.ArchitectureSpec, points: list[Point]) -> list[dict[str, Any]]:
        """Each point's result row (trained now unless cached), in the order given."""
        context = multiprocessing.get_context("spawn")
        _corpus(spec.dataset.model_dump_json())
        with ProcessPoolExecutor(self.jobs, mp_context=context) as pool:
            return self._rows(pool, spec, points)

    def _observe(
        self, pool: ProcessPoolExecutor, spec: trainer.ArchitectureSpec, points: list[Point]
    ) -> list[Observation]:
        return [_observation(p, row) for p, row in zip(points, self._rows(pool, spec, points), strict=True)]

    def _rows(
        self, pool: ProcessPoolExecutor, spec: trainer.ArchitectureSpec, points: list[Point]
    ) -> list[dict[str, Any]]:
        todo = [p for p in points if run_key(spec, p) not in self.done]
        if todo and self.cached_only:
            raise SystemExit(
                f"{len(todo)} run(s) missing from {self.cache_file}: run the bench that trains them"
            )
        # Widest first, so the pool ends on short runs.
        todo.sort(key=lambda p: -(p.shape.width**2) * p.shape.depth * steps_of(spec, p))
        started = time.perf_counter()
        jobs = [(spec.model_dump(mode="json"), p, self.device, self.threads, self.compile) for p in todo]
        for point, result in zip(todo, pool.map(_train, jobs), strict=True):
            row = {"key": run_key(spec, point), "width": point.shape.width, "lr": point.lr, **result}
            self.done[row["key"]] = row
            with self.cache_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"  {spec.parametrization.mode} width {point.shape.width:5d} depth {point.shape.depth} "
                f"steps {steps_of(spec, point)} "
                f"lr {point.lr:.4g} seed {point.seed}: "
                + (f"val loss {result['val_loss']:.4f}" if result["val_loss"] is not None else "diverged")
                + f" ({result['wall_seconds']:.0f} s)",
                flush=True,
            )
        self.trained += len(todo)
        self.seconds += time.perf_counter() - started
        return [self.done[run_key(spec, p)] for p in points]


def _observation(point: Point, row: dict[str, Any]) -> Observation:
    if row["status"] == "succeeded" and row["val_loss"] is not None:
        return Observation(point.shape, point.index, point.seed, "ok", float(row["val_loss"]))
    return Observation(point.shape, point.index, point.seed, "diverged")


def train_ladder(
    tuner: CachedTuner, spec: trainer.ArchitectureSpec, points: list[Point], rung: Callable[[Point], int]
) -> dict[int, list[dict[str, Any]]]:
    """Train a ladder's points (cached ones are reused) and group their result rows by rung(point)."""
    by_rung: dict[int, list[dict[str, Any]]] = {}
    for point, row in zip(points, tuner.train(spec, points), strict=True):
        by_rung.setdefault(rung(point), []).append(row)
    return by_rung


def fit_rows(rows: list[dict[str, Any]]) -> predictor.FitResult:
    """mu_scaling in non-embedding N over the rows that succeeded, each labelled with its seed."""
    ok = [r for r in rows if r["val_loss"] is not None]
    return predictor.fit(
        np.array([float(r["n_params_non_embedding"]) for r in ok]),
        np.array([float(r["val_loss"]) for r in ok]),
        law="mu_scaling",
        seeds=np.array([int(r["seed"]) for r in ok]),
    )


def held_out(fit: predictor.FitResult, rows: list[dict[str, Any]]) -> HeldOut:
    """Predict one rung (its rows share N) with the interval for a mean of as many runs as succeeded."""
    losses = [float(r["val_loss"]) for r in rows if r["val_loss"] is not None]
    return predict_held_out(fit, float(rows[0]["n_params_non_embedding"]), losses, level=0.9)


def bench_parser(doc: str | None, profiles: list[str]) -> argparse.ArgumentParser:
    """The command line every tuning bench takes: --profile, --jobs and --out."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(profiles), default="cpu")
    parser.add_argument("--jobs", type=int, default=None, help="Runs at once (default: the profile's).")
    parser.add_argument("--out", type=Path, default=None, help="Report file (default: bench/results/…).")
    return parser


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def curve_lines(curve: Curve, label: str) -> list[str]:
    """One tuned LR curve as report lines: `label` (e.g. "width    16"), its state, η* with its interval
    and curvature, then every grid point's mean loss ± seed sd (the best one marked)."""
    o = curve.optimum
    head = f"  {label}: {curve.state}, {curve.extensions} extension(s)"
    if o is not None:
        curvature = f"{o.curvature:.3f}" if o.curvature is not None else "n/a"
        head += f"; η* {o.lr_star:.4g} [{o.lower:.4g}, {o.upper:.4g}] ({o.method}); curvature {curvature}"
    lines = [head] + ([f"    {curve.reason}"] if curve.reason else [])
    for p in curve.points:
        loss = "diverged" if p.loss_mean is None else f"{p.loss_mean:.4f}"
        sd = f" ± {p.loss_sd:.4f}" if p.loss_sd is not None else ""
        mark = " <- best" if o is not None and abs(p.lr - o.lr_star) / o.lr_star < 1e-9 else ""
        lines.append(f"      lr {p.lr:<9.4g} {loss}{sd}  (n={p.n}, diverged {p.diverged}){mark}")
    return lines


def write_report(tuner: CachedTuner, lines: list[str], out: Path, started: float, root: Path) -> None:
    """End a bench's report with what the tuner trained and the wall time, write it to `out` and print it."""
    lines.append(
        f"{tuner.trained} runs trained in {tuner.seconds:.0f} s this invocation ({len(tuner.done)} in the "
        f"cache); total wall time {time.perf_counter() - started:.0f} s"
    )
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text, end="")
    print(f"written to {out.relative_to(root) if out.is_relative_to(root) else out}")
