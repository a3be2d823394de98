"""Stored rows as the API's public models, shared by the routes and the dashboard."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import predictor
from app.fits import FitPoints
from app.models import FINISHED, Run, RunStatus, Sweep, SweepRun
from app.schemas import LossPoint, RunCounts, RunPublic, RunSummary, SweepPublic


def run_summary(run: Run) -> RunSummary:
    summary = RunSummary.model_validate(run)
    summary.eta_seconds = eta_seconds(run)
    return summary


def eta_seconds(run: Run) -> float | None:
    """A running run's time left at the step rate since it started (as of its latest heartbeat)."""
    step, started, beat = run.progress_step, run.started_at, run.heartbeat_at
    if run.status != RunStatus.running or not step or started is None or beat is None:
        return None
    left = (run.progress_total or run.steps) - step
    if left <= 0:
        return 0.0
    elapsed = (beat - started).total_seconds()
    return elapsed / step * left if elapsed > 0 else None


def run_public(run: Run) -> RunPublic:
    """The summary plus every other public field, read from the column of the same name."""
    columns = RunPublic.model_fields.keys() - RunSummary.model_fields.keys() - {"loss_curve"}
    return RunPublic(
        **run_summary(run).model_dump(),
        **{name: getattr(run, name) for name in columns},
        # Finite points only: a NaN stored by older code would reach the client as null, which its
        # float field refuses.
        loss_curve=[
            LossPoint(step=m.step, train_loss=m.train_loss)
            for m in run.metrics
            if math.isfinite(m.train_loss)
        ],
    )


def counts_of(runs: Sequence[Any]) -> RunCounts:
    """Runs per status and the distinct sizes (width, depth) that succeeded, for rows with `status`,
    `width` and `depth`."""
    counts = RunCounts()
    for run in runs:
        setattr(counts, run.status.value, getattr(counts, run.status.value) + 1)
    counts.succeeded_widths = len({(r.width, r.depth) for r in runs if r.status == RunStatus.succeeded})
    return counts


def sweep_public(session: Session, sweep: Sweep) -> SweepPublic:
    runs = session.scalars(
        select(Run)
        .join(SweepRun, SweepRun.run_id == Run.id)
        .where(SweepRun.sweep_id == sweep.id)
        .order_by(Run.width, Run.seed, Run.steps, Run.id)
    ).all()
    return SweepPublic(
        id=sweep.id,
        architecture_id=sweep.architecture_id,
        widths=sweep.widths,
        seeds=sweep.seeds,
        steps=sweep.steps,
        lr=sweep.lr,
        lr_source=sweep.lr_source,
        data_seed=sweep.data_seed,
        token_budgets=sweep.token_budgets or None,
        warm_start=sweep.warm_start,
        noise=sweep.noise,
        depths=sorted({r.depth for r in runs}),
        aspect_ratio=sweep.aspect_ratio,
        created_at=sweep.created_at,
        counts=counts_of(runs),
        done=all(r.status in FINISHED for r in runs),
        runs=[run_summary(r) for r in runs],
    )


def fit_point_fields(points: FitPoints, predicted: Iterable[float]) -> list[dict[str, Any]]:
    """Each pooled run as a public fit point's fields (FitPoint; a GridPoint adds D and C): its shape,
    seeds, N, loss, the fit's value there and the residual."""
    return [
        {
            "run_id": r,
            "width": w,
            "depth": depth,
            "seed": s,
            "data_seed": d,
            "n_params": n,
            "loss": y,
            "predicted": float(p),
            "residual": float(y - p),
        }
        for r, w, depth, s, d, n, y, p in zip(
            points.run_ids,
            points.widths,
            points.depths,
            points.seeds,
            points.data_seeds,
            points.n_params,
            points.losses,
            predicted,
            strict=True,
        )
    ]


def served_parameters(result: predictor.FitResult) -> dict[str, float]:
    """The law's parameters as served: a slice fit's fixed γ is listed beside the fitted ones."""
    return {**result.params, **({"gamma": result.gamma} if result.gamma is not None else {})}


def served_stderr(result: predictor.FitResult) -> dict[str, float | None]:
    """Their standard errors: a slice fit's γ has the one of the grid fit it came from."""
    return {**result.stderr, **({"gamma": result.gamma_sd} if result.gamma is not None else {})}
