"""Helpers for API tests: a client on a fresh database, and proxy results without training.

Finished runs are written through the real queue (claim → complete), with validation losses that follow
a known power law in the proxies' true non-embedding parameter counts, so fits behave as on real data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import architectures, queue, tuning
from app.db import make_engine
from app.models import Run
from app.settings import Settings
from trainer import ArchitectureSpec, RunResult, count_params


def spec_dict(name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "n_layers": 2,
        "head_dim": 16,
        "proxy_widths": [32, 48, 64, 96, 128],
    }
    spec.update(overrides)
    return spec


def law_loss(n_params: float, e: float = 1.8, a: float = 60.0, alpha: float = 0.3) -> float:
    return e + a * n_params ** (-alpha)


# A token-horizon surface of the grid law's form (app.fits.GRID_LAW, kaplan), with exponents near its fit
# to the CPU grid of bench/horizon.py: the N term matters less where D is small.
GRID_TRUTH = {"A": 2400.0, "alpha": 0.65, "B": 1.0e6, "beta": 1.07, "gamma": 0.27}


def grid_loss(n_params: float, tokens: float) -> float:
    t = GRID_TRUTH
    return float((t["A"] * n_params ** -t["alpha"] + t["B"] * tokens ** -t["beta"]) ** t["gamma"])


# A run's loss as a function of the run: (claimed run, its non-embedding parameters) -> loss, or None
# for a run that diverged.
LossOf = Callable[[queue.ClaimedRun, int], float | None]


def lr_basin(optimum: Callable[[int], float], curvature: float = 0.06, noise: float = 0.002) -> LossOf:
    """Law-following losses plus a basin in log2 LR around optimum(width): a stand-in for LR sweeps."""
    rng = np.random.default_rng(1)

    def loss(claimed: queue.ClaimedRun, n_params: int) -> float:
        distance = math.log2(claimed.lr) - math.log2(optimum(claimed.width))
        return law_loss(n_params) + curvature * distance**2 + noise * rng.standard_normal()

    return loss


def finish_runs(
    engine: Engine,
    architecture_id: int,
    *,
    e: float = 1.8,
    a: float = 60.0,
    alpha: float = 0.3,
    noise: float = 0.002,
    seed: int = 0,
    loss_of: LossOf | None = None,
    advance: bool = True,
) -> list[int]:
    """Claim and complete every queued run of the architecture with a law-following result (or the
    loss `loss_of` gives), advancing its tunings after each as the worker does, until none is queued."""
    rng = np.random.default_rng(seed)
    done: list[int] = []
    foreign: list[int] = []  # other architectures' runs, held until the end so they are not reclaimed
    with Session(engine) as session:
        while True:
            claimed = queue.claim(session, "test-worker", lease_seconds=60)
            if claimed is None:
                break
            run = session.get(Run, claimed.id)
            assert run is not None
            if run.architecture_id != architecture_id:
                foreign.append(claimed.id)
                continue
            spec = ArchitectureSpec.model_validate(claimed.spec).at_depth(claimed.depth)
            total, non_embedding = count_params(spec, claimed.width)
            if loss_of is not None:
                loss = loss_of(claimed, non_embedding)
            else:
                loss = law_loss(non_embedding, e, a, alpha) * (1 + noise * rng.standard_normal())
            result = RunResult(
                status="succeeded" if loss is not None else "diverged",
                reason=None if loss is not None else "training loss became nan at step 3",
                width=claimed.width,
                seed=claimed.seed,
                data_seed=claimed.data_seed,
                lr=claimed.lr,
                steps=claimed.steps,
                final_train_loss=loss - 0.01 if loss is not None else None,
                val_loss=loss,
                n_params=total,
                n_params_non_embedding=non_embedding,
                tokens=claimed.steps * spec.training.batch_tokens,
                flops=6.0 * non_embedding * claimed.steps * spec.training.batch_tokens,
                wall_seconds=1.0,
                tokens_per_second=1000.0,
                mfu=None,
                device="cpu",
                corpus_fingerprint="c" * 64,
                tokenizer="byte",
                code_version="test",
                loss_curve=[(1, 5.5), (claimed.steps, (loss or 5.5) - 0.01)],
            ).to_dict()
            assert queue.complete(session, claimed.id, "test-worker", result)
            if advance:
                tuning.advance_for_run(session, claimed.id)
            done.append(claimed.id)
        for run_id in foreign:
            queue.release(session, run_id, "test-worker")
    return done


def one_run_spec(source: object) -> dict[str, Any]:
    """A one-block spec at width 16, four steps, reading `source`: a run that takes a moment."""
    return {
        "name": "tiny",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "proxy_widths": [16],
        "training": {"steps": 4, "batch_tokens": 256, "eval_tokens": 512},
        "dataset": {"source": str(source)},
    }


def enqueue_one(settings: Settings, spec: dict[str, Any], steps: int = 4) -> int:
    """Queue one run of `spec` (of `steps` steps) straight through the queue, as a row stored by hand or
    by a permissive API would be (the API's own checks are not under test)."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        arch, _ = architectures.register(session, ArchitectureSpec.model_validate(spec))
        queue.enqueue_sweep(session, arch, [16], [0], steps, depth=1, lr=0.01, lr_source="spec")
        session.commit()
        run_id = session.scalars(select(Run.id).where(Run.architecture_id == arch.id)).one()
    engine.dispose()
    return run_id


def stored_run(settings: Settings, run_id: int) -> Run:
    engine = make_engine(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(Run, run_id)
        assert run is not None
    engine.dispose()
    return run


def forward(api: TestClient) -> Callable[[httpx.Request], httpx.Response]:
    """An httpx handler that serves a Client's requests with the app (httpx.MockTransport(forward(api)))."""

    def handle(request: httpx.Request) -> httpx.Response:
        served = api.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers=dict(request.headers),
        )
        return httpx.Response(served.status_code, headers=served.headers, content=served.content)

    return handle
