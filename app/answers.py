"""The public answers built from architectures' current fits: a prediction, a comparison, and what
each says about extrapolation, the LR tuning and comparability. Pure functions of a read session and
the fits; caching and loading the fits is app/prediction_service.py's job."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

import predictor
from app import architectures, tuning
from app.comparability import common_unit, recipe_differences
from app.errors import field_error, get_or_404, unprocessable
from app.fits import NO_TREND_ADVICE, SLICE_LAW, CurrentFit, FitPoints, NoScalingTrend, holdout_warning
from app.models import Architecture
from app.public import served_parameters, served_stderr
from app.schemas import (
    Allocation,
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
from predictor.frontier import at_ratio, compute_of, compute_optimal
from predictor.shape import predict_with_shape
from trainer import ArchitectureSpec, count_params
from trainer.accounting import flops_per_token, total_params_at
from trainer.shapes import non_embedding, shape_for

CurrentOf = Callable[[Session, int], CurrentFit]  # (session, architecture id) -> its current fit


def prediction(
    session: Session, settings: Settings, arch_id: int, request: PredictionRequest, current_fit: CurrentOf
) -> PredictionPublic:
    """The answer to one prediction request; `current_fit` gives an architecture's current fit (the
    whole-run ladder's, or the (N, D) grid's for a request in tokens or compute)."""
    arch = get_or_404(session, Architecture, arch_id)
    spec = architectures.stored_spec(arch)
    n_params: float | None = None
    depth = None
    aspect = request.aspect_ratio
    if request.width is not None:
        try:
            spec.validate_width(request.width)
        except ValueError as exc:
            raise unprocessable(field_error("body", "width", msg=str(exc))) from None
        depth = request.depth or spec.n_layers
        n_params = float(non_embedding(spec, request.width, depth))
        aspect = request.width / depth
    elif request.n_params is not None:
        n_params = request.n_params
        if aspect is not None:
            nearest = shape_for(spec, n_params, aspect)
            depth = None if nearest is None else nearest[1]
    current = current_fit(session, arch.id)
    if settings.fit_gate and not current.quality.ok:
        raise NoScalingTrend(arch.id, arch.name, current.quality)
    result, points = current.result, current.points
    tokens, allocation = request.tokens, None
    if request.compute is not None:
        n_params, tokens, allocation = _allocate(
            result, request.compute, request.tokens_per_parameter, request.level
        )
    assert n_params is not None
    at = n_params if tokens is None else [n_params, tokens]
    shape, shape_notes = current.shape, []
    corrected = tokens is None and shape is not None and shape.needed and aspect is not None
    if corrected:
        assert shape is not None and aspect is not None
        predicted = predict_with_shape(
            result,
            shape,
            n_params,
            aspect,
            level=request.level,
            interval=request.interval,
            seeds=request.seeds,
        )
    else:
        if result.law == SLICE_LAW:  # fitted in total parameters: asked at the target's total
            at = _total_of(spec, n_params, request.width, depth)
        predicted = result.predict(
            at, level=request.level, interval=request.interval, seeds=request.seeds, method=request.method
        )
        if tokens is None and shape is not None and shape.needed:
            shape_notes.append(
                f"shape matters for this ladder ({shape.reason}) but the prediction was asked by N alone: "
                "give `width` and `depth`, or `aspect_ratio`, for a shape-corrected answer"
            )
    deepest = max(points.depths) if points.depths else spec.n_layers
    if depth is not None and depth > deepest and tokens is None:
        shape_notes.append(
            f"depth {depth} is {depth / deepest:.3g}× the deepest proxy ({deepest}): extrapolated in depth "
            "(bench/depth.py measures how far one holds)"
        )
    assert points.recipe is not None  # a fit exists, so a sweep does
    return PredictionPublic(
        architecture_id=arch.id,
        n_params=n_params,
        width=request.width,
        depth=depth,
        aspect_ratio=aspect,
        shape_corrected=corrected,
        tokens=tokens,
        compute=None if tokens is None else float(compute_of(n_params, tokens)),
        allocation=allocation,
        level=request.level,
        interval=request.interval,
        seeds=request.seeds,
        method=request.method,
        predicted_loss=float(predicted.mean),
        lower=float(predicted.lower),
        upper=float(predicted.upper),
        law=result.law,
        law_choice=current.law_choice,
        parameters=served_parameters(result),
        stderr=served_stderr(result),
        noise_model=result.noise.summary(),
        points_used=result.n_points,
        widths_used=sorted(set(points.widths)),
        excluded_runs=[ExcludedRun(run_id=e.run_id, reason=e.reason) for e in points.excluded],
        n_params_range=(min(points.n_params), max(points.n_params)),
        extrapolation_factor=n_params / max(points.n_params),
        extrapolation=extrapolation(spec, points, n_params, request.width, tokens, depth),
        warnings=[
            *predicted.warnings,
            *shape_notes,
            *holdout_warning(current.holdout),
            *lr_warnings(session, arch, spec, points),
        ],
        provenance=Provenance(
            fit_id=current.fit_id,
            run_ids=current.run_ids,
            corpus_fingerprints=points.corpus_fingerprints,
            text_fingerprint=points.text_fingerprint,
            val_bytes_per_token=points.val_bytes_per_token,
            recipe=Recipe(**dataclasses.asdict(points.recipe)),
        ),
    )


def _total_of(spec: ArchitectureSpec, n_params: float, width: int | None, depth: int | None) -> float:
    """The target's total parameters (the slice law's x): counted at an asked width, else interpolated at
    N (trainer.accounting.total_params_at); 422 past the widths the trainer can count."""
    if width is not None:
        return float(count_params(spec.at_depth(depth) if depth is not None else spec, width)[0])
    total = total_params_at(spec, n_params)
    if total is None:
        raise unprocessable(
            field_error("body", "n_params", msg="past width 2^20: no total parameter count for the slice law")
        )
    return total


def _target(result: predictor.FitResult, request: CompareRequest) -> tuple[float, float | None]:
    """The (N, D) a candidate is ranked at: the one asked, or its own split of the compute budget."""
    if request.compute is not None:
        n, d, _ = _allocate(result, request.compute, request.tokens_per_parameter, request.level)
        return n, d
    assert request.n_params is not None
    return request.n_params, request.tokens


def _allocate(
    result: predictor.FitResult, compute: float, tokens_per_parameter: float | None, level: float
) -> tuple[float, float, Allocation]:
    """N and D for a compute budget: at the asked tokens per parameter, else compute-optimal."""
    if tokens_per_parameter is not None:
        n, d = at_ratio(compute, tokens_per_parameter)
        rule = Allocation(
            rule="tokens-per-parameter",
            tokens_per_parameter=tokens_per_parameter,
            n_params_lower=None,
            n_params_upper=None,
            tokens_lower=None,
            tokens_upper=None,
        )
        return float(n[0]), float(d[0]), rule
    try:
        frontier = compute_optimal(result, compute, level)
    except ValueError as exc:
        raise unprocessable(field_error("body", "compute", msg=str(exc))) from None
    rule = Allocation(
        rule="compute-optimal",
        tokens_per_parameter=float(frontier.tokens_per_parameter[0]),
        n_params_lower=float(frontier.n_lower[0]),
        n_params_upper=float(frontier.n_upper[0]),
        tokens_lower=float(frontier.tokens_lower[0]),
        tokens_upper=float(frontier.tokens_upper[0]),
    )
    return float(frontier.n_params[0]), float(frontier.tokens[0]), rule


def extrapolation(
    spec: ArchitectureSpec,
    points: FitPoints,
    n_params: float,
    width: int | None,
    tokens: float | None = None,
    depth: int | None = None,
) -> Extrapolation:
    """The target against the largest proxy in N, total parameters, width, depth and FLOPs (at the
    proxies' token budget, or at `tokens`), and for an (N, D) fit in D and 6ND against the fitted runs'
    largest. Asked by N, the width is the one on the head-size grid whose N is nearest (at `depth`,
    else the spec's)."""
    largest = max(range(len(points.n_params)), key=points.n_params.__getitem__)
    shaped = spec.at_depth(depth) if depth is not None else spec
    target_width = width if width is not None else _width_for(shaped, n_params)
    total = flops = None
    if target_width is not None:
        total = float(count_params(shaped, target_width)[0])
        assert points.recipe is not None
        budget = tokens if tokens is not None else points.recipe.steps * spec.training.batch_tokens
        flops = float(flops_per_token(shaped, target_width) * budget)
    target_depth = depth if depth is not None else spec.n_layers

    def ratio(value: float | None, proxy: float) -> float | None:
        return value / proxy if value is not None and proxy > 0 else None

    grid = tokens is not None and bool(points.tokens)
    return Extrapolation(
        n_params=n_params / points.n_params[largest],
        total_params=ratio(total, points.total_params[largest]),
        width=ratio(None if target_width is None else float(target_width), float(points.widths[largest])),
        flops=ratio(flops, points.flops[largest]),
        target_width=target_width,
        depth=ratio(float(target_depth), float(max(points.depths))) if points.depths else None,
        target_depth=target_depth,
        tokens=ratio(tokens, max(points.tokens)) if grid else None,
        compute=(
            ratio(
                float(compute_of(n_params, tokens)),
                float(max(compute_of(n, d) for n, d in zip(points.n_params, points.tokens, strict=True))),
            )
            if grid and tokens is not None
            else None
        ),
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
    """What the LR tuning says about this ladder (never tuned, still running, failed, or drifting), and
    that it was built by upscaling when it was."""
    recipe = points.recipe
    assert recipe is not None
    batch = spec.training.batch_tokens
    horizons = [b // batch for b in recipe.token_budgets] if recipe.token_budgets else [recipe.steps]
    warm = (
        [
            f"the ladder was built by μP upscaling (sweep {recipe.sweep_id}): each rung above the smallest "
            "started from the one below and trained its steps on top, so the curve is that of upscaled "
            "training, not of models trained from scratch for those steps"
        ]
        if recipe.warm_start
        else []
    )
    return warm + tuning.warnings(session, arch.id, spec, recipe.lr, horizons)


def comparison(
    session: Session,
    settings: Settings,
    request: CompareRequest,
    current_fit: CurrentOf,
    law_choice: str = "asked",
) -> ComparePublic:
    """Rank candidates by expected loss at `n_params`, with P(best) paired by seed (predictor.compare);
    `law_choice` says why their ladders' law is the one `current_fit` loads."""
    ids = list(dict.fromkeys(request.architecture_ids))
    if len(ids) < 2:
        raise unprocessable(field_error("body", "architecture_ids", msg="give at least two different ids"))
    archs = [get_or_404(session, Architecture, i) for i in ids]
    specs = [architectures.stored_spec(a) for a in archs]
    currents = [current_fit(session, a.id) for a in archs]
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
    unit = common_unit(archs, specs, currents)
    targets = [_target(c.result, request) for c in currents]
    # The slice law is fitted in total parameters: each design is asked at its own total at that N.
    queries = [
        _total_of(s, n, None, None) if c.result.law == SLICE_LAW else (n if d is None else (n, d))
        for s, c, (n, d) in zip(specs, currents, targets, strict=True)
    ]
    ranking = predictor.compare(
        [c.result for c in currents],
        at=queries,
        level=request.level,
        factors=unit.factors,
    )
    lr_notes = [lr_warnings(session, a, s, c.points) for a, s, c in zip(archs, specs, currents, strict=True)]
    candidates = []
    for k in sorted(range(len(archs)), key=lambda i: ranking.ranks[i]):
        p = ranking.predictions[k]
        candidates.append(
            Candidate(
                rank=ranking.ranks[k],
                architecture_id=archs[k].id,
                name=archs[k].name,
                predicted_loss=float(p.mean),
                lower=float(p.lower),
                upper=float(p.upper),
                probability_best=float(ranking.probability_best[k]),
                extrapolation_factor=targets[k][0] / max(currents[k].points.n_params),
                extrapolation=extrapolation(specs[k], currents[k].points, targets[k][0], None, targets[k][1]),
                warnings=[*p.warnings, *holdout_warning(currents[k].holdout), *lr_notes[k]],
                n_params=targets[k][0],
                tokens=targets[k][1],
                unit_factor=unit.factors[k],
            )
        )
    return ComparePublic(
        n_params=request.n_params,
        tokens=request.tokens,
        compute=request.compute,
        tokens_per_parameter=request.tokens_per_parameter,
        level=request.level,
        interval="expected",
        unit=unit.name,
        law=None if request.in_tokens else currents[0].result.law,
        law_choice=None if request.in_tokens else law_choice,
        best_architecture_id=candidates[0].architecture_id,
        candidates=candidates,
        excluded=excluded,
        warnings=[
            *([unit.note] if unit.note else []),
            *recipe_differences(archs, specs, currents, grid=request.in_tokens),
        ],
    )
