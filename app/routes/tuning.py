"""LR tuning and the μP transfer check, and the coordinate check, per architecture."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, status

from app import architectures, coord_checks, tuning
from app.deps import IdPath, SessionDep, SettingsDep, WriteAccess, WriteSessionDep
from app.errors import field_error, get_or_404, unprocessable
from app.limits import check_stored_source, check_tuning
from app.models import Architecture, Tuning
from app.public import counts_of
from app.tuning_schemas import (
    CoordCheckAxis,
    CoordCheckPublic,
    HorizonRulePublic,
    LrCurve,
    TransferPublic,
    TuningCreate,
    TuningPublic,
)
from trainer import ArchitectureSpec

router = APIRouter(prefix="/v1/architectures", tags=["tuning"])


def resolve(spec: ArchitectureSpec, request: TuningCreate) -> dict[str, Any]:
    """The request with every default filled in: what the tuning is keyed and planned by."""
    base_width, base_depth = spec.parametrization.base_width, spec.n_layers
    widths = tuning.default_widths(spec) if request.widths is None else request.widths
    depths = tuning.default_depths(spec) if request.depths is None else request.depths
    steps = request.steps or spec.training.steps
    params = {
        "center_lr": spec.training.lr if request.lr is None else request.lr,
        "base_width": base_width,
        "base_depth": base_depth,
        "widths": sorted(set(widths) - {base_width}),
        "depths": sorted(set(depths) - {base_depth}),
        "seeds": sorted(set(request.seeds)),
        "steps": steps,
        "grid_factor": request.grid_factor,
        "grid_points": request.grid_points,
        "max_extensions": request.max_extensions,
        "level": request.level,
    }
    horizons = sorted(set(_horizon_steps(spec, request.token_budgets or [])) - {steps})
    if horizons:  # only then: a tuning without a horizon check keeps the key it had before there was one
        params["horizons"] = horizons
    return params


def _horizon_steps(spec: ArchitectureSpec, token_budgets: list[int]) -> list[int]:
    """Each token budget in steps, or 422 naming the fix (each a positive multiple of batch_tokens)."""
    batch = spec.training.batch_tokens
    off = [b for b in token_budgets if b < batch or b % batch]
    if off:
        rounded = [max(1, round(b / batch)) * batch for b in off]
        raise unprocessable(
            field_error(
                "body",
                "token_budgets",
                msg=f"token budgets {off} are not positive multiples of training.batch_tokens {batch}: each "
                f"horizon is a whole number of steps (use {rounded})",
            )
        )
    return [b // batch for b in token_budgets]


def tuning_public(session: SessionDep, row: Tuning) -> TuningPublic:
    state, result, rows = tuning.current_result(session, row)
    params = row.params
    curves = []
    arch = session.get(Architecture, row.architecture_id)
    assert arch is not None  # a tuning is deleted with its architecture
    batch = architectures.stored_spec(arch).training.batch_tokens
    for curve in result["curves"]:
        optimum = curve.get("optimum") or {}
        steps = curve["shape"].get("steps") or params["steps"]  # results stored before the horizon check
        curves.append(
            LrCurve(
                width=curve["shape"]["width"],
                depth=curve["shape"]["depth"],
                steps=steps,
                tokens=steps * batch,
                state=curve["state"],
                reason=curve["reason"],
                extensions=curve["extensions"],
                lr_star=optimum.get("lr_star"),
                lower=optimum.get("lower"),
                upper=optimum.get("upper"),
                curvature=optimum.get("curvature"),
                method=optimum.get("method"),
                note=optimum.get("note"),
                curve=curve["points"],
            )
        )
    return TuningPublic(
        id=row.id,
        architecture_id=row.architecture_id,
        status=state.value,
        params=params,
        level=params["level"],
        lr_star=result["lr_star"],
        lower=result["lower"],
        upper=result["upper"],
        ladder_lr=result["ladder_lr"],
        per_width=[c for c in curves if c.depth == params["base_depth"] and c.steps == params["steps"]],
        per_depth=[
            c
            for c in curves
            if c.width == params["base_width"] and c.steps == params["steps"] and params["depths"]
        ],
        per_horizon=sorted(
            (c for c in curves if (c.width, c.depth) == (params["base_width"], params["base_depth"])),
            key=lambda c: c.steps,
        )
        if params.get("horizons")
        else [],
        transfer={axis: TransferPublic(**t) for axis, t in (result.get("transfer") or {}).items()},
        horizon_rule=HorizonRulePublic(**result["horizon_rule"]) if result.get("horizon_rule") else None,
        runs=counts_of(rows),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


@router.post(
    "/{architecture_id}/tuning",
    response_model=TuningPublic,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[WriteAccess],
    responses={404: {}, 409: {}, 422: {}},
)
def create_tuning(
    architecture_id: IdPath,
    session: WriteSessionDep,
    settings: SettingsDep,
    request: Annotated[TuningCreate | None, Body()] = None,
) -> TuningPublic:
    """Queue an LR sweep at the base shape and the transfer check (idempotent: the same request returns
    the same tuning). Once it succeeds, new sweeps train at its η* unless they pin `lr`."""
    arch = get_or_404(session, Architecture, architecture_id)
    spec = architectures.stored_spec(arch)
    check_stored_source(arch.id, spec, settings)
    params = resolve(spec, request or TuningCreate())
    check_tuning(spec, params, settings)
    row, _ = tuning.create(session, arch, params)
    return tuning_public(session, row)


@router.get("/{architecture_id}/tuning", response_model=TuningPublic, responses={404: {}})
def get_tuning(architecture_id: IdPath, session: SessionDep) -> TuningPublic:
    """The architecture's latest tuning: status, η* with its interval, each curve, the transfer check."""
    get_or_404(session, Architecture, architecture_id)
    row = tuning.latest(session, architecture_id)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"architecture {architecture_id} has no tuning yet: "
            f"POST /v1/architectures/{architecture_id}/tuning",
        )
    return tuning_public(session, row)


@router.get("/{architecture_id}/coord-check", response_model=CoordCheckPublic, responses={404: {}, 409: {}})
def get_coord_check(
    architecture_id: IdPath, session: SessionDep, settings: SettingsDep, http: Request
) -> CoordCheckPublic:
    """The coordinate check at the tuned η* (else the spec's LR): mean |x| of every module's output and
    of its change, widths ×1…×8 (and depths, with depth_alpha > 0); computed on the first request.
    409 when its largest model exceeds MUPREDICT_COORD_CHECK_MAX_PARAMS."""
    arch = get_or_404(session, Architecture, architecture_id)
    try:
        record, request = coord_checks.stored_or_computed(
            session, http.app.state.session_factory, arch, settings.coord_check_max_params
        )
    except coord_checks.TooLarge as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    width = CoordCheckAxis(**record.result["width"])
    depth = CoordCheckAxis(**record.result["depth"]) if record.result.get("depth") else None
    passes = width.verdict == "passes" and (depth is None or depth.verdict == "passes")
    return CoordCheckPublic(
        architecture_id=arch.id,
        lr=request["lr"],
        lr_source=request["lr_source"],
        verdict="passes" if passes else "fails",
        width=width,
        depth=depth,
        created_at=record.created_at,
    )
