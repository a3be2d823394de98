"""The transfer check can fail: the same real CPU recipe tuned at widths 16, 64 and 128 shows no trend
in η* under μP and drifts under SP (Adam's optimal LR falls with width in SP: Tensor Programs V, Fig. 1).

Real training on the built-in corpus, two processes with one torch thread each (about three minutes on
the 2-core CI machine). The recipe is the cheapest one found on which the two modes separate: at base
width 8 μP itself drifts (tiny widths are far from the limit), and at 200 steps the curves are noise.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import cache

import pytest
import torch

from trainer import ArchitectureSpec, Corpus, load_corpus, train
from trainer.tuning import Observation, Point, Shape, TuningPlan
from trainer.tuning_result import run_locally

pytestmark = pytest.mark.slow


def recipe(mode: str) -> ArchitectureSpec:
    return ArchitectureSpec.model_validate(
        {
            "name": f"transfer-{mode}",
            "n_layers": 2,
            "head_dim": 8,
            "context_length": 32,
            "parametrization": {"mode": mode, "base_width": 16},
            "training": {
                "lr": 0.01,
                "steps": 400,
                "batch_tokens": 512,
                "schedule": "wsd",
                "decay_fraction": 0.4,
            },
        }
    )


@cache
def corpus() -> Corpus:
    return load_corpus("builtin")


def train_point(job: tuple[str, Point]) -> Observation:
    mode, point = job
    torch.set_num_threads(1)
    result = train(
        recipe(mode), point.shape.width, seed=point.seed, lr=point.lr, corpus=corpus(), device="cpu"
    )
    outcome = "ok" if result.status == "succeeded" else "diverged"
    return Observation(point.shape, point.index, point.seed, outcome, result.val_loss)


def test_the_verdict_flips_from_mup_to_sp(builtin_corpus: Corpus) -> None:
    plan = TuningPlan(center_lr=0.01, base=Shape(16, 2), widths=(64, 128), seeds=(2, 3), grid_factor=2.0)
    results = {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for mode in ("mup", "sp"):
            results[mode] = run_locally(
                plan, lambda points, m=mode: list(pool.map(train_point, [(m, p) for p in points]))
            )
    mup, sp = results["mup"].transfer["width"], results["sp"].transfer["width"]
    # SP: η* falls with width, clearly (Tensor Programs V, Fig. 1): the check must say so.
    assert sp.verdict == "drifts", sp.reason
    assert sp.upper is not None and sp.upper < 0
    # μP: no trend in η* that the check can see, and far less movement than SP. Its verdict itself sits on
    # the one-grid-step spread line on this tiny recipe (0.53 log2 on one 2-core machine, under 0.5 on
    # another: floating-point kernels differ), so the test asserts the slope, not the verdict.
    assert mup.lower is not None and mup.upper is not None and mup.lower <= 0 <= mup.upper, mup.reason
    assert mup.spread_log2 < sp.spread_log2 and abs(mup.slope or 0.0) < abs(sp.slope or 0.0) / 2
