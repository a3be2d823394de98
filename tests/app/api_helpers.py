"""Helpers for API tests: a client on a fresh database, and proxy results without training.

Finished runs are written through the real queue (claim → complete), with validation losses that follow
a known power law in the proxies' true non-embedding parameter counts, so fits behave as on real data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app import queue
from app.models import Run
from trainer import ArchitectureSpec, count_params


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


def finish_runs(
    engine: Engine,
    architecture_id: int,
    *,
    e: float = 1.8,
    a: float = 60.0,
    alpha: float = 0.3,
    noise: float = 0.002,
    seed: int = 0,
) -> list[int]:
    """Claim and complete every queued run of the architecture with a law-following result."""
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
            spec = ArchitectureSpec.model_validate(claimed.spec)
            total, non_embedding = count_params(spec, claimed.width)
            loss = law_loss(non_embedding, e, a, alpha) * (1 + noise * rng.standard_normal())
            result = {
                "status": "succeeded",
                "reason": None,
                "steps": claimed.steps,
                "final_train_loss": loss - 0.01,
                "val_loss": loss,
                "n_params": total,
                "n_params_non_embedding": non_embedding,
                "tokens": claimed.steps * spec.training.batch_tokens,
                "flops": 6.0 * non_embedding * claimed.steps * spec.training.batch_tokens,
                "wall_seconds": 1.0,
                "tokens_per_second": 1000.0,
                "mfu": None,
                "device": "cpu",
                "corpus_fingerprint": "c" * 64,
                "code_version": "test",
                "loss_curve": [(1, 5.5), (claimed.steps, loss - 0.01)],
            }
            assert queue.complete(session, claimed.id, "test-worker", result)
            done.append(claimed.id)
        for run_id in foreign:
            queue.release(session, run_id, "test-worker")
    return done
