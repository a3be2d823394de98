"""Predictions and comparisons, read from the cached fits (never refitted per request)."""

from __future__ import annotations

import dataclasses
from functools import partial

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

import predictor
from app import architectures, tuning
from app.deps import FitCacheDep, ReadSessionsDep, SettingsDep
from app.errors import field_error, get_or_404, unprocessable
from app.fit_cache import FitCache
from app.fits import NO_TREND_ADVICE, CurrentFit, FitPoints, NoScalingTrend, results_version
from app.models import Architecture
from app.schemas import (
    Candidate,
    ComparePublic,
    CompareRequest,
    ExcludedCandidate,
    ExcludedRun,
    Extrapolation,
    PredictionPublic,
    PredictionRequest,
    Provenance,
    Recipe,
)
from app.settings import Settings
from trainer import ArchitectureSpec, count_params
from trainer.accounting import flops_per_token

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
    key = (
        "prediction",
        arch_id,
        version,
        request.n_params,
        request.width,
        request.level,
        request.interval,
        request.seeds,
        request.method,
    )
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
    spec = architectures.stored_spec(arch)
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
    if settings.fit_gate and not current.quality.ok:
        raise NoScalingTrend(arch.id, arch.name, current.quality)
    result, points = current.result, current.points
    prediction = fits.predict(
        current, n_params, request.level, request.interval, request.seeds, request.method
    )
    assert points.recipe is not None  # a fit exists, so a sweep does
    return PredictionPublic(
        architecture_id=arch.id,
        n_params=n_params,
        width=request.width,
        level=request.level,
        interval=request.interval,
        seeds=request.seeds,
        method=request.method,
        predicted_loss=float(prediction.mean),
        lower=float(prediction.lower),
        upper=float(prediction.upper),
        law=result.law,
        parameters=result.params,
        stderr=result.stderr,
        noise_model=result.noise.summary(),
        points_used=result.n_points,
        widths_used=sorted(set(points.widths)),
        excluded_runs=[ExcludedRun(run_id=e.run_id, reason=e.reason) for e in points.excluded],
        n_params_range=(float(result.x_range[0]), float(result.x_range[1])),
        extrapolation_factor=float(prediction.extrapolation_factor),
        extrapolation=extrapolation(spec, points, n_params, request.width),
        warnings=[*prediction.warnings, *lr_warnings(session, arch, spec, points)],
        provenance=Provenance(
            fit_id=current.fit_id,
            run_ids=current.run_ids,
            corpus_fingerprints=points.corpus_fingerprints,
            recipe=Recipe(**dataclasses.asdict(points.recipe)),
        ),
    )


def extrapolation(
    spec: ArchitectureSpec, points: FitPoints, n_params: float, width: int | None
) -> Extrapolation:
    """The target against the largest proxy in N, total parameters, width and FLOPs (at the proxies'
    token budget). Asked by N, the width is the one on the head-size grid whose N is nearest."""
    largest = max(range(len(points.n_params)), key=points.n_params.__getitem__)
    target_width = width if width is not None else _width_for(spec, n_params)
    total = flops = None
    if target_width is not None:
        total = float(count_params(spec, target_width)[0])
        assert points.recipe is not None
        tokens = points.recipe.steps * spec.training.batch_tokens
        flops = float(flops_per_token(spec, target_width) * tokens)

    def ratio(value: float | None, proxy: float) -> float | None:
        return value / proxy if value is not None and proxy > 0 else None

    return Extrapolation(
        n_params=n_params / points.n_params[largest],
        total_params=ratio(total, points.total_params[largest]),
        width=ratio(None if target_width is None else float(target_width), float(points.widths[largest])),
        flops=ratio(flops, points.flops[largest]),
        target_width=target_width,
    )


def _width_for(spec: ArchitectureSpec, n_params: float) -> int | None:
    """The width on the head-size grid whose non-embedding N is nearest n_params (None past 2^20)."""
    low, high = 1, (1 << 20) // spec.head_dim
    if count_params(spec, high * spec.head_dim)[1] < n_params:
        return None
    while low < high:  # the smallest multiple whose N reaches the target
        mid = (low + high) // 2
        if count_params(spec, mid * spec.head_dim)[1] < n_params:
            low = mid + 1
        else:
            high = mid
    candidates = [k * spec.head_dim for k in (max(1, low - 1), low)]
    return min(candidates, key=lambda w: abs(count_params(spec, w)[1] - n_params))


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
    """Rank candidates by expected loss at `n_params`, with P(best) paired by seed (predictor.compare)."""
    ids = list(dict.fromkeys(request.architecture_ids))
    if len(ids) < 2:
        raise unprocessable(field_error("body", "architecture_ids", msg="give at least two different ids"))
    archs = [get_or_404(session, Architecture, i) for i in ids]
    specs = [architectures.stored_spec(a) for a in archs]
    currents = [fits.current(session, a.id, settings.min_runs_for_fit) for a in archs]
    # A fit without a scaling trend is never ranked: it is listed with its reasons instead.
    excluded = [
        ExcludedCandidate(architecture_id=a.id, name=a.name, reasons=c.quality.reasons)
        for a, c in zip(archs, currents, strict=True)
        if settings.fit_gate and not c.quality.ok
    ]
    if len(archs) - len(excluded) < 2:
        blocked = "; ".join(f"{e.name} (id {e.architecture_id}): {'; '.join(e.reasons)}" for e in excluded)
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"fewer than two candidates have a usable scaling trend, so there is nothing to rank. "
            f"Blocked by {blocked}. {NO_TREND_ADVICE.format(id='{id}')}",
        )
    refused = {e.architecture_id for e in excluded}
    keep = [i for i, a in enumerate(archs) if a.id not in refused]
    archs, specs, currents = [archs[i] for i in keep], [specs[i] for i in keep], [currents[i] for i in keep]
    _check_comparable(archs, specs, currents)
    comparison = predictor.compare([c.result for c in currents], request.n_params, request.level)
    lr_notes = [lr_warnings(session, a, s, c.points) for a, s, c in zip(archs, specs, currents, strict=True)]
    candidates = []
    for k in sorted(range(len(archs)), key=lambda i: comparison.ranks[i]):
        p = comparison.predictions[k]
        candidates.append(
            Candidate(
                rank=comparison.ranks[k],
                architecture_id=archs[k].id,
                name=archs[k].name,
                predicted_loss=float(p.mean),
                lower=float(p.lower),
                upper=float(p.upper),
                probability_best=float(comparison.probability_best[k]),
                extrapolation_factor=float(p.extrapolation_factor),
                extrapolation=extrapolation(specs[k], currents[k].points, request.n_params, None),
                warnings=[*p.warnings, *lr_notes[k]],
            )
        )
    return ComparePublic(
        n_params=request.n_params,
        level=request.level,
        interval="expected",
        best_architecture_id=candidates[0].architecture_id,
        candidates=candidates,
        excluded=excluded,
        warnings=_recipe_differences(archs, specs, currents),
    )


def _recipe_differences(
    archs: list[Architecture], specs: list[ArchitectureSpec], currents: list[CurrentFit]
) -> list[str]:
    """Recipe differences that leave the losses comparable only approximately: a warning each."""
    contexts = [f"{s.context_length:,}" for s in specs]
    budgets = [f"{_proxy_tokens(s, c):,}" for s, c in zip(specs, currents, strict=True)]
    checks = (
        (
            contexts,
            "context lengths",
            "a token's loss falls with the context before it, so the mean loss per token depends on the "
            "context length as well as the design; compare at one context length to rank the designs alone",
        ),
        (
            budgets,
            "token budgets per proxy run",
            "the loss at N also depends on how many tokens the proxies saw; train the ladders to the same "
            "budget (training.token_budget) to rank the designs alone",
        ),
    )
    return [
        f"the candidates differ in {what} ({described}): {why}"
        for values, what, why in checks
        if (described := _differences(archs, values))
    ]


def _differences(archs: list[Architecture], values: list[str]) -> str | None:
    """Each candidate's value, "name (id N): value; …", when they are not all the same (else None)."""
    if len(set(values)) < 2:
        return None
    return "; ".join(f"{a.name} (id {a.id}): {v}" for a, v in zip(archs, values, strict=True))


def _proxy_tokens(spec: ArchitectureSpec, current: CurrentFit) -> int:
    """Training tokens per run of the fitted ladder (its sweep's steps, which may override the spec's)."""
    assert current.points.recipe is not None  # a fit exists only for a ladder with a recipe
    return current.points.recipe.steps * spec.training.batch_tokens


def _check_comparable(
    archs: list[Architecture], specs: list[ArchitectureSpec], currents: list[CurrentFit]
) -> None:
    """Losses in nats per token compare only on the same tokens: one tokenizer, one corpus (422 if not)."""
    tokenizers = [f"{s.dataset.tokenizer}, vocabulary {s.vocab_size}" for s in specs]
    corpora = [(c.points.corpus_fingerprints or ["none"])[0][:12] for c in currents]
    checks = (
        (
            tokenizers,
            "use different tokenizers",
            "losses per token are not comparable; compare designs trained on the same tokenizer",
        ),
        (corpora, "were trained on different corpora", "train them on the same data to compare them"),
    )
    errors = [
        field_error("body", "architecture_ids", msg=f"the candidates {what} ({described}): {fix}")
        for values, what, fix in checks
        if (described := _differences(archs, values))
    ]
    if errors:
        raise unprocessable(*errors)
