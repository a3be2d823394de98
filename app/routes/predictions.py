"""Predictions and comparisons, read from the cached fits (never refitted per request)."""

from __future__ import annotations

import dataclasses
from functools import partial

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

import predictor
from app import tuning
from app.deps import FitCacheDep, ReadSessionsDep, SettingsDep
from app.fits import FitCache, FitPoints, results_version
from app.models import Architecture
from app.schemas import (
    Candidate,
    ComparePublic,
    CompareRequest,
    PredictionPublic,
    PredictionRequest,
    Provenance,
    Recipe,
)
from app.settings import Settings
from app.views import field_error, get_or_404, unprocessable
from trainer import ArchitectureSpec, count_params

router = APIRouter(prefix="/v1", tags=["predictions"])


def _architecture_id_of_spec(engine: Engine, request: PredictionRequest) -> int:
    assert request.spec is not None
    with engine.connect() as conn:
        found = conn.scalar(select(Architecture.id).where(Architecture.spec_hash == request.spec.spec_hash()))
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "no architecture with this spec: POST it to /v1/architectures, then launch a sweep",
        )
    return int(found)


@router.post("/predictions", response_model=PredictionPublic, responses={404: {}, 409: {}, 422: {}})
async def predict(request: PredictionRequest, http: Request) -> Response:
    """Predicted loss at `n_params` (or at `width`) with a prediction interval, from the proxies' fit."""
    # The answer is a pure function of the request and the architecture's finished runs, so it is
    # memoised under their version. This handler is async so that a repeated question costs no
    # thread-pool hop of its own: the version is read by one query shared with every concurrent request
    # for the same architecture (app.coalesce), and only a miss goes to a thread to build the answer.
    # What it needs comes straight from app.state, not through four dependencies: resolving one costs
    # ~40 µs a request here, as much as the memoised answer itself.
    state = http.app.state
    engine, sessions, fits = state.read_engine, state.read_session_factory, state.fit_cache
    settings: Settings = state.settings
    if request.architecture_id is not None:
        arch_id = request.architecture_id
    else:
        arch_id = await run_in_threadpool(_architecture_id_of_spec, engine, request)
    version = await fits.versions.read(arch_id, partial(results_version, engine, arch_id))
    key = ("prediction", arch_id, version, request.n_params, request.width, request.level)
    body = fits.memoised_response(key)
    if body is None:

        def build() -> bytes:
            with sessions() as session:
                return _predict(arch_id, request, session, settings, fits).model_dump_json().encode()

        body = await run_in_threadpool(fits.response, key, build)
    return Response(body, media_type="application/json")


def _predict(
    arch_id: int, request: PredictionRequest, session: Session, settings: Settings, fits: FitCache
) -> PredictionPublic:
    arch = get_or_404(session, Architecture, arch_id)
    spec = ArchitectureSpec.model_validate(arch.spec)
    if request.width is not None:
        try:
            spec.validate_width(request.width)
        except ValueError as exc:
            raise unprocessable(field_error("body", "width", msg=str(exc))) from None
        n_params = float(count_params(spec, request.width)[1])
    else:
        assert request.n_params is not None
        n_params = request.n_params
    current = fits.current(session, arch.id, settings.min_runs_for_fit)
    result, points = current.result, current.points
    prediction = fits.predict(current, n_params, request.level)
    assert points.recipe is not None  # a fit exists, so a sweep does
    return PredictionPublic(
        architecture_id=arch.id,
        n_params=n_params,
        width=request.width,
        level=request.level,
        predicted_loss=float(prediction.mean),
        lower=float(prediction.lower),
        upper=float(prediction.upper),
        law=result.law,
        parameters=result.params,
        stderr=result.stderr,
        points_used=result.n_points,
        widths_used=sorted(set(points.widths)),
        n_params_range=(float(result.x_range[0]), float(result.x_range[1])),
        extrapolation_factor=float(prediction.extrapolation_factor),
        warnings=[*prediction.warnings, *lr_warnings(session, arch, spec, points)],
        provenance=Provenance(
            fit_id=current.fit_id,
            run_ids=current.run_ids,
            corpus_fingerprints=points.corpus_fingerprints,
            recipe=Recipe(**dataclasses.asdict(points.recipe)),
        ),
    )


def lr_warnings(session: Session, arch: Architecture, spec: ArchitectureSpec, points: FitPoints) -> list[str]:
    """What the LR tuning says about this ladder: never tuned, still running, failed, or drifting."""
    assert points.recipe is not None
    return tuning.warnings(session, arch.id, spec, points.recipe.lr)


@router.post("/compare", response_model=ComparePublic, responses={404: {}, 409: {}})
def compare(
    request: CompareRequest, sessions: ReadSessionsDep, settings: SettingsDep, fits: FitCacheDep
) -> ComparePublic:
    with sessions() as session:
        return _compare(request, session, settings, fits)


def _compare(request: CompareRequest, session: Session, settings: Settings, fits: FitCache) -> ComparePublic:
    """Rank candidate architectures by predicted loss at `n_params`, with P(best) from the bootstraps."""
    ids = list(dict.fromkeys(request.architecture_ids))
    if len(ids) < 2:
        raise unprocessable(field_error("body", "architecture_ids", msg="give at least two different ids"))
    archs = [get_or_404(session, Architecture, i) for i in ids]
    currents = [fits.current(session, a.id, settings.min_runs_for_fit) for a in archs]
    predictions = [fits.predict(c, request.n_params, request.level) for c in currents]
    lr_notes = [
        lr_warnings(session, a, ArchitectureSpec.model_validate(a.spec), c.points)
        for a, c in zip(archs, currents, strict=True)
    ]
    p_best = predictor.probability_best(predictions)
    order = sorted(range(len(archs)), key=lambda k: float(predictions[k].mean))
    candidates = [
        Candidate(
            rank=rank + 1,
            architecture_id=archs[k].id,
            name=archs[k].name,
            predicted_loss=float(predictions[k].mean),
            lower=float(predictions[k].lower),
            upper=float(predictions[k].upper),
            probability_best=float(p_best[k]),
            extrapolation_factor=float(predictions[k].extrapolation_factor),
            warnings=[*predictions[k].warnings, *lr_notes[k]],
        )
        for rank, k in enumerate(order)
    ]
    return ComparePublic(
        n_params=request.n_params,
        level=request.level,
        best_architecture_id=candidates[0].architecture_id,
        candidates=candidates,
    )
