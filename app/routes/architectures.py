"""Architectures: register specs, list them, launch proxy sweeps, read their fit."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import architectures, listing, queue, tuning
from app.checkpoints import CheckpointStore
from app.cost import recent_throughput
from app.deps import (
    IdPath,
    PredictionsDep,
    SessionDep,
    SettingsDep,
    SharedReadDep,
    WriteAccess,
    WriteSessionDep,
)
from app.errors import field_error, get_or_404, unprocessable
from app.fits import SLICE_LAW, basis_report, holdout_report, proxies_report
from app.limits import check_source, check_stored_source, check_sweep, run_flops
from app.models import Architecture, Run
from app.pagination import decode_cursor, encode_cursor
from app.public import fit_point_fields, served_parameters, served_stderr, sweep_public
from app.schemas import (
    MAX_N_PARAMS,
    ArchitectureListItem,
    ArchitecturePublic,
    CurvePoint,
    ExcludedRun,
    FitPoint,
    FitPublic,
    FitQuality,
    HoldoutCheck,
    Page,
    ProxySize,
    RunCounts,
    ShapeTestPublic,
    SpecCheck,
    SweepCreate,
    SweepPublic,
    TuningSummary,
)
from trainer import ArchitectureSpec, count_params
from trainer.accounting import total_params_at
from trainer.growth import check_widths
from trainer.horizon import HorizonError, HorizonPlan, plan_horizons
from trainer.shapes import ladder_shapes
from trainer.spec import Text

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


def architecture_public(session: Session, arch: Architecture) -> ArchitecturePublic:
    """The architecture with its spec (StoredSpecInvalid, a 409, when the stored spec no longer loads)."""
    spec = architectures.stored_spec(arch)
    return ArchitecturePublic(**_listed(arch, spec, *listing.summaries(session, [arch])[arch.id]))


def architecture_items(session: Session, archs: Sequence[Architecture]) -> list[ArchitectureListItem]:
    """The architectures as listed: a stored spec that no longer validates is flagged, not raised."""
    found = listing.summaries(session, archs)
    items = []
    for arch in archs:
        try:
            items.append(
                ArchitectureListItem(**_listed(arch, architectures.stored_spec(arch), *found[arch.id]))
            )
        except architectures.StoredSpecInvalid as exc:
            items.append(
                ArchitectureListItem(**_listed(arch, None, *found[arch.id]), valid=False, error=str(exc))
            )
    return items


def _listed(
    arch: Architecture, spec: ArchitectureSpec | None, runs: RunCounts, summary: TuningSummary | None
) -> dict[str, Any]:
    return {
        "id": arch.id,
        "name": arch.name,
        "spec_hash": arch.spec_hash,
        "spec": spec,
        "created_at": arch.created_at,
        "runs": runs,
        "tuning": summary,
    }


@router.post(
    "",
    response_model=ArchitecturePublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[WriteAccess],
    responses={200: {"model": ArchitecturePublic, "description": "An identical spec already exists."}},
)
def create_architecture(
    spec: ArchitectureSpec, session: WriteSessionDep, settings: SettingsDep, response: Response
) -> ArchitecturePublic:
    """Register a spec; the same spec again (by canonical hash) returns the existing one with 200."""
    check_source(spec, settings)
    arch, created = architectures.register(session, spec)
    if not created:
        response.status_code = status.HTTP_200_OK
    return architecture_public(session, arch)


@router.post("/validate", response_model=SpecCheck)
def validate_spec(spec: ArchitectureSpec, session: SessionDep, settings: SettingsDep) -> SpecCheck:
    """Check a spec without storing it: 422 with field-level errors, or the filled-in spec and its sizes."""
    check_source(spec, settings)
    spec_hash = spec.spec_hash()
    existing = session.scalar(select(Architecture.id).where(Architecture.spec_hash == spec_hash))
    speed = recent_throughput(session)
    proxies = []
    for width in spec.proxy_widths:
        total, non_embedding = count_params(spec, width)
        flops = run_flops(spec, width, spec.training.steps)
        proxies.append(
            ProxySize(
                width=width,
                n_params=total,
                n_params_non_embedding=non_embedding,
                flops=flops,
                seconds=speed.seconds(flops) if speed else None,
            )
        )
    ladder = sum(p.flops for p in proxies)
    return SpecCheck(
        spec=spec,
        spec_hash=spec_hash,
        architecture_id=existing,
        proxies=proxies,
        ladder_flops=ladder,
        ladder_seconds=speed.seconds(ladder) if speed else None,
        throughput_basis=speed.basis if speed else None,
    )


@router.get("", response_model=Page[ArchitectureListItem])
async def list_architectures(
    read: SharedReadDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="From the previous page's next_cursor.")] = None,
    name: Annotated[Text | None, Query(max_length=200, description="Substring of the name.")] = None,
) -> Response:
    """Architectures, oldest first, a page at a time (one whose stored spec no longer validates is
    listed with `valid: false` and the error)."""
    query = select(Architecture).order_by(Architecture.id).limit(limit + 1)
    if cursor is not None:
        query = query.where(Architecture.id > decode_cursor(cursor))
    if name:
        query = query.where(Architecture.name.contains(name, autoescape=True))

    # Async, its session inside one worker-thread call: a flood of reads cannot starve the pool, and
    # identical reads in flight together share one (app.db_slots).
    def page(session: Session) -> Page[ArchitectureListItem]:
        rows = session.scalars(query).all()
        items = architecture_items(session, rows[:limit])
        return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    return await read.json(page)


@router.get("/{architecture_id}", response_model=ArchitecturePublic, responses={404: {}, 409: {}})
async def get_architecture(architecture_id: IdPath, read: SharedReadDep) -> Response:
    return await read.json(
        lambda session: architecture_public(session, get_or_404(session, Architecture, architecture_id))
    )


@router.delete(
    "/{architecture_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteAccess],
    responses={404: {}},
)
def delete_architecture(architecture_id: IdPath, session: WriteSessionDep, settings: SettingsDep) -> Response:
    """Delete the architecture with its sweeps, runs, fits, tunings and its runs' checkpoints in the
    artifact directory (where this process sees it). Not undoable; a run in training is dropped by its
    worker at the next heartbeat."""
    run_ids = list(session.scalars(select(Run.id).where(Run.architecture_id == architecture_id)))
    if not architectures.delete(session, architecture_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no architecture with id {architecture_id}")
    CheckpointStore(settings.artifact_dir).drop(run_ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{architecture_id}/sweeps",
    response_model=SweepPublic,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[WriteAccess],
    responses={404: {}, 409: {}, 422: {}},
)
def create_sweep(
    architecture_id: IdPath, request: SweepCreate, session: WriteSessionDep, settings: SettingsDep
) -> SweepPublic:
    """Queue one proxy run per width and seed, at the tuned η* (else the spec's LR) unless `lr` pins one.
    Idempotent: runs that exist already are reused."""
    arch = get_or_404(session, Architecture, architecture_id)
    spec = architectures.stored_spec(arch)
    check_stored_source(arch.id, spec, settings)
    widths = request.widths or list(spec.proxy_widths)
    horizons = _horizons(spec, request)
    if horizons is None:
        steps, cost_steps = request.steps or spec.training.steps, None
    else:
        steps, cost_steps = horizons.steps[-1], horizons.cost_steps
    depths, shapes = _depths(spec, widths, request)
    check_sweep(spec, widths, request.seeds, steps, settings, cost_steps, shapes)
    noise = _upscale_noise(spec, widths, request)
    latest = tuning.latest(session, arch.id, succeeded=True)
    lr_horizon = steps if horizons is None else horizons.lr_steps
    tuned = tuning.ladder_lr(latest, lr_horizon)
    if request.lr is not None:
        lr, source = request.lr, "pinned"
    elif tuned is not None:
        rule = tuning.horizon_rule(latest)
        corrected = rule is not None and rule.applied and lr_horizon != rule.base_steps
        lr, source = tuned, "tuned-horizon" if corrected else "tuned"
    else:
        lr, source = spec.training.lr, "spec"
    sweep, _ = queue.enqueue_sweep(
        session,
        arch,
        widths,
        request.seeds,
        steps,
        depth=spec.n_layers,
        lr=lr,
        lr_source=source,
        data_seed=request.data_seed,
        horizons=horizons,
        upscale_noise=noise,
        depths=depths,
        aspect_ratio=request.aspect_ratio,
    )
    session.commit()
    if request.retry_failed:
        queue.retry(session, [link.run_id for link in sweep.runs])
        session.refresh(sweep)
    return sweep_public(session, sweep)


def _depths(
    spec: ArchitectureSpec, widths: list[int], request: SweepCreate
) -> tuple[list[int] | None, list[tuple[int, int]]]:
    """A ladder over depth: the sweep's depths (None: the spec's n_layers alone, as a width ladder) and
    its (width, depth) shapes (trainer/shapes.py), or 422 naming what to change."""
    depths = request.depths
    if (
        depths is None
        and request.aspect_ratio is None
        and request.token_budgets is None
        and not request.warm_start
    ):
        depths = spec.proxy_depths
    try:
        shapes = ladder_shapes(widths, depths or [spec.n_layers], request.aspect_ratio)
    except ValueError as exc:
        field = "aspect_ratio" if request.aspect_ratio is not None else "depths"
        raise unprocessable(field_error("body", field, msg=str(exc))) from None
    if depths is not None and sorted(depths) == [spec.n_layers]:
        depths = None  # the spec's own depth: an ordinary ladder over width
    return (sorted(depths) if depths else None), shapes


def _upscale_noise(spec: ArchitectureSpec, widths: list[int], request: SweepCreate) -> float | None:
    """A warm-started ladder's noise (None: every run from scratch), or 422 naming what to change: each
    width must be one the width before it can be upscaled to (trainer.growth)."""
    if request.warm_start is None:
        return None
    ordered = sorted(set(widths))
    if len(ordered) < 2:
        raise unprocessable(
            field_error("body", "widths", msg="a warm-started ladder needs at least two widths to upscale")
        )
    doubling = [ordered[0] * 2**i for i in range(len(ordered))]
    for small, large in itertools.pairwise(ordered):
        try:
            check_widths(spec, small, large)
        except ValueError as exc:
            raise unprocessable(
                field_error(
                    "body",
                    "widths",
                    msg=f"widths {ordered}: {large} cannot be upscaled from {small} ({exc}); with warm_start "
                    f"each width must be a whole multiple of the one before, e.g. {doubling}",
                )
            ) from None
    return 1.0 if request.noise is None else float(request.noise)


def _horizons(spec: ArchitectureSpec, request: SweepCreate) -> HorizonPlan | None:
    """The token-horizon plan a sweep asks for (None: whole runs), or 422 naming what to change."""
    if request.token_budgets is None:
        return None
    if request.steps is not None:
        raise unprocessable(
            field_error(
                "body",
                "steps",
                msg="give steps or token_budgets, not both: with token_budgets each run's steps are its "
                "budget / training.batch_tokens",
            )
        )
    try:
        return plan_horizons(spec, request.token_budgets)
    except HorizonError as exc:
        raise unprocessable(field_error("body", "token_budgets", msg=str(exc))) from None


@router.get("/{architecture_id}/fit", response_model=FitPublic, responses={404: {}, 409: {}})
def get_fit(
    architecture_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    predictions: PredictionsDep,
    curve_to: Annotated[
        float | None, Query(gt=0, le=MAX_N_PARAMS, description="Last N of the curve.")
    ] = None,
    level: Annotated[float, Query(gt=0, lt=1, description="Coverage of the band.")] = 0.9,
    curve_points: Annotated[int, Query(ge=2, le=200)] = 40,
    law: Annotated[
        Literal["auto", "mu_scaling", "kaplan_slice"],
        Query(
            description="The ladder's law: mu_scaling (E + A·N^−α), kaplan_slice (the fixed-D slice of the "
            "kaplan law in total parameters, γ from the architecture's token-horizon grid), or auto: "
            "kaplan_slice where the grid gives the ladder its γ, else mu_scaling (`law_choice` says which; "
            "the default)."
        ),
    ] = "auto",
) -> FitPublic:
    """The scaling-law fit over the architecture's finished proxies (409 until enough have finished)."""
    arch = get_or_404(session, Architecture, architecture_id)
    current = predictions.current(session, architecture_id, law)
    result, points = current.result, current.points
    fitted = result.law  # what `law` asked for, with auto resolved
    predicted = result.predict(points.x(fitted)).mean
    low, high = min(points.n_params), max(points.n_params)
    grid = np.geomspace(low, max(curve_to or 10 * high, low * 1.01), curve_points)
    at = grid
    if fitted == SLICE_LAW:  # fitted in total parameters; the curve is drawn against N like every other
        spec = architectures.stored_spec(arch)
        at = np.array([total_params_at(spec, n) or np.nan for n in grid])
        grid, at = grid[np.isfinite(at)], at[np.isfinite(at)]
    band = result.predict(at, level=level, interval="expected")
    return FitPublic(
        architecture_id=architecture_id,
        fit_id=current.fit_id,
        law=result.law,
        law_choice=current.law_choice,
        parameters=served_parameters(result),
        stderr=served_stderr(result),
        r2=result.r2,
        success=result.success,
        message=result.message,
        at_bound=result.at_bound,
        n_points=result.n_points,
        n_params_range=(low, high),
        report=result.report()
        + basis_report(fitted)
        + proxies_report(points)
        + holdout_report(current.holdout),
        quality=FitQuality(**current.quality.to_dict(), enforced=settings.fit_gate),
        noise_model=result.noise.summary(),
        excluded_runs=[ExcludedRun(run_id=e.run_id, reason=e.reason) for e in points.excluded],
        points=[FitPoint(**f) for f in fit_point_fields(points, np.atleast_1d(predicted))],
        shape=None if current.shape is None else ShapeTestPublic(**current.shape.to_dict()),
        holdout=None if current.holdout is None else HoldoutCheck(**current.holdout.to_dict()),
        level=level,
        curve=[
            CurvePoint(n_params=float(n), mean=float(m), lower=float(lo), upper=float(up))
            for n, m, lo, up in zip(
                grid,
                np.atleast_1d(band.mean),
                np.atleast_1d(band.lower),
                np.atleast_1d(band.upper),
                strict=True,
            )
        ],
        created_at=current.created_at,
        result=current.stored,
    )
