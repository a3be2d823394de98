"""The (N, D) fit of an architecture's token-horizon grid: its points, the law along D per width, and
the compute-optimal frontier (predictor.frontier), for the client's DataFrame and the dashboard."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query

from app.deps import IdPath, PredictionsDep, SessionDep, SettingsDep
from app.errors import get_or_404
from app.fits import GRID_LAW
from app.models import Architecture
from app.public import fit_point_fields
from app.schemas import (
    MAX_COMPUTE,
    MAX_TOKENS,
    ExcludedRun,
    FitQuality,
    FrontierPoint,
    GridPoint,
    GridPublic,
    Recipe,
    TokenCurvePoint,
)
from predictor.frontier import compute_of, compute_optimal

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


@router.get("/{architecture_id}/grid", response_model=GridPublic, responses={404: {}, 409: {}})
def get_grid(
    architecture_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    predictions: PredictionsDep,
    tokens_to: Annotated[
        float | None, Query(gt=0, le=MAX_TOKENS, description="Last D of the curves.")
    ] = None,
    compute_to: Annotated[
        float | None, Query(gt=0, le=MAX_COMPUTE, description="Last C of the frontier.")
    ] = None,
    level: Annotated[float, Query(gt=0, lt=1, description="Coverage of the bands.")] = 0.9,
    curve_points: Annotated[int, Query(ge=2, le=200)] = 40,
    law: Annotated[
        Literal["kaplan", "chinchilla"],
        Query(
            description="The (N, D) law: kaplan, which predictions and comparisons use (app.fits.GRID_LAW), "
            "or the additive chinchilla law, to compare the two fits (their lack of fit, AIC, residuals)."
        ),
    ] = GRID_LAW,
) -> GridPublic:
    """The (N, D) fit over the latest token-horizon sweep's branches, with the kaplan law unless `law`
    says otherwise (409 until enough budgets and widths have finished: POST …/sweeps with token_budgets)."""
    get_or_404(session, Architecture, architecture_id)
    current = predictions.current(session, architecture_id, law)
    result, points = current.result, current.points
    x = np.column_stack([points.n_params, points.tokens])
    predicted = np.atleast_1d(result.predict(x).mean)
    tokens = np.geomspace(
        min(points.tokens), max(tokens_to or 10 * max(points.tokens), min(points.tokens) * 1.01), curve_points
    )
    curves = []
    for width in sorted(set(points.widths)):
        n = points.n_params[points.widths.index(width)]
        band = result.predict(
            np.column_stack([np.full(len(tokens), n), tokens]), level=level, interval="expected"
        )
        curves += [
            TokenCurvePoint(
                width=width, n_params=n, tokens=float(d), mean=float(m), lower=float(lo), upper=float(up)
            )
            for d, m, lo, up in zip(tokens, band.mean, band.lower, band.upper, strict=True)  # type: ignore[arg-type]
        ]
    computes = compute_of(points.n_params, points.tokens)
    low = float(np.min(computes))
    budgets = np.geomspace(low, max(compute_to or 1000 * float(np.max(computes)), low * 1.01), curve_points)
    frontier = compute_optimal(result, budgets, level)
    assert points.recipe is not None  # a fit exists, so a sweep does
    return GridPublic(
        architecture_id=architecture_id,
        fit_id=current.fit_id,
        law=result.law,
        parameters=result.params,
        stderr=result.stderr,
        r2=result.r2,
        quality=FitQuality(**current.quality.to_dict(), enforced=settings.fit_gate),
        noise_model=result.noise.summary(),
        recipe=Recipe(**dataclasses.asdict(points.recipe)),
        excluded_runs=[ExcludedRun(run_id=e.run_id, reason=e.reason) for e in points.excluded],
        points=[
            GridPoint(**f, tokens=d, compute=float(c))
            for f, d, c in zip(fit_point_fields(points, predicted), points.tokens, computes, strict=True)
        ],
        level=level,
        curves=curves,
        frontier=[
            FrontierPoint(
                compute=float(frontier.compute[i]),
                n_params=float(frontier.n_params[i]),
                n_params_lower=float(frontier.n_lower[i]),
                n_params_upper=float(frontier.n_upper[i]),
                tokens=float(frontier.tokens[i]),
                tokens_lower=float(frontier.tokens_lower[i]),
                tokens_upper=float(frontier.tokens_upper[i]),
                tokens_per_parameter=float(frontier.tokens_per_parameter[i]),
                loss=float(np.atleast_1d(frontier.loss.mean)[i]),
                loss_lower=float(np.atleast_1d(frontier.loss.lower)[i]),
                loss_upper=float(np.atleast_1d(frontier.loss.upper)[i]),
            )
            for i in range(len(budgets))
        ],
        report=result.report(),
        created_at=current.created_at,
    )
