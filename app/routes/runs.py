"""Runs: one proxy training each, with its result and loss curve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app import architectures, queue, resume_queue
from app.deps import IdPath, IdQuery, SettingsDep, SharedReadDep, WriteAccess, WriteSessionDep
from app.errors import field_error, get_or_404, unprocessable
from app.limits import check_sweep
from app.models import Run, RunRole, RunStatus, SweepRun
from app.pagination import decode_cursor, encode_cursor
from app.public import run_public, run_summary
from app.schemas import MAX_ID, Page, RunPublic, RunSummary, UpscaleCreate
from trainer.growth import check_widths

router = APIRouter(prefix="/v1/runs", tags=["runs"])


# The read handlers are async and do their database work through `SharedReadDep`: the session is opened
# and closed inside one worker-thread call, so a flood of reads neither holds connections across thread
# hops nor starves the pool, and identical GETs in flight together share one read (app.db_slots).


@router.get("", response_model=Page[RunSummary])
async def list_runs(
    read: SharedReadDep,
    architecture_id: IdQuery = None,
    sweep_id: IdQuery = None,
    status: RunStatus | None = None,
    width: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> Response:
    """Runs, oldest first, filtered by architecture, sweep, status or width."""
    query = select(Run).order_by(Run.id).limit(limit + 1)
    if architecture_id is not None:
        query = query.where(Run.architecture_id == architecture_id)
    if sweep_id is not None:
        query = query.join(SweepRun, SweepRun.run_id == Run.id).where(SweepRun.sweep_id == sweep_id)
    if status is not None:
        query = query.where(Run.status == status)
    if width is not None:
        query = query.where(Run.width == width)
    if cursor is not None:
        query = query.where(Run.id > decode_cursor(cursor))

    def page(session: Session) -> Page[RunSummary]:
        rows = session.scalars(query).all()
        return Page(
            items=[run_summary(r) for r in rows[:limit]],
            next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None,
        )

    return await read.json(page)


@router.get("/{run_id}", response_model=RunPublic, responses={404: {}})
async def get_run(run_id: IdPath, read: SharedReadDep) -> Response:
    """One run: status, lease, result and training-loss curve."""

    def one(session: Session) -> RunPublic:
        get_or_404(session, Run, run_id)
        run = session.scalars(select(Run).options(selectinload(Run.metrics)).where(Run.id == run_id)).one()
        return run_public(run)

    return await read.json(one)


@router.post(
    "/{run_id}/retry", response_model=RunPublic, dependencies=[WriteAccess], responses={404: {}, 409: {}}
)
def retry_run(run_id: IdPath, session: WriteSessionDep) -> RunPublic:
    """Queue a failed or cancelled run again with a fresh set of attempts (409 for any other state)."""
    run = get_or_404(session, Run, run_id)
    if not queue.retry(session, [run_id]):
        hint = " (a diverged run would diverge again: lower the LR with a new sweep)"
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run_id} is {run.status.value}: only a failed or cancelled run can be retried"
            + (hint if run.status == RunStatus.diverged else ""),
        )
    session.expire_all()
    return run_public(get_or_404(session, Run, run_id))


@router.post(
    "/{run_id}/upscale",
    response_model=RunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[WriteAccess],
    responses={404: {}, 409: {}, 422: {}},
)
def upscale_run(
    run_id: IdPath, request: UpscaleCreate, session: WriteSessionDep, settings: SettingsDep
) -> RunPublic:
    """Queue one continuation of a finished run, widened to `width` by μP upscaling (trainer/upscale.py):
    it starts from the run's final weights and Adam moments, copied k-fold (the same function) plus
    `noise` × a fresh μP init, and trains `steps` more at `lr`. Its result is a run of role 'upscaled'
    (never pooled with runs trained from scratch). Idempotent: the same request returns the same run.
    A run that kept no final checkpoint has it rewritten first (a trunk of its recipe is trained)."""
    parent = get_or_404(session, Run, run_id)
    if parent.role not in (RunRole.run, RunRole.upscaled):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run_id} is a token-horizon {parent.role.value}, not a whole run: upscale a run of a "
            "whole-run sweep (role 'run') or an upscaled run",
        )
    if parent.status != RunStatus.succeeded:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run_id} is {parent.status.value}: only a succeeded run can be upscaled (its final "
            "state is the start)",
        )
    spec = architectures.stored_spec(parent.architecture).at_depth(parent.depth)
    try:
        check_widths(spec, parent.width, request.width)
    except ValueError as exc:
        raise unprocessable(field_error("body", "width", msg=str(exc))) from None
    seed = parent.seed if request.seed is None else request.seed
    steps = request.steps or parent.steps
    check_sweep(spec, [request.width], [seed], steps, settings)
    key = queue.RunKey(
        request.width,
        parent.depth,
        seed,
        steps,
        parent.lr if request.lr is None else request.lr,
        role=RunRole.upscaled,
        resume_step=parent.steps,
        noise=float(request.noise),
        source=parent.id,
    )
    # A final state rewritten for an earlier continuation is read from where it was written.
    source = resume_queue.final_state_source(session, parent)
    new_id = queue.enqueue_runs(session, parent.architecture_id, [key], parents={key: source})[key]
    session.commit()
    return run_public(get_or_404(session, Run, new_id))


@router.delete(
    "/{run_id}", response_model=RunPublic, dependencies=[WriteAccess], responses={404: {}, 409: {}}
)
def cancel_run(run_id: IdPath, session: WriteSessionDep) -> RunPublic:
    """Cancel a queued or running run: a queued one is never trained, a running one stops at its worker's
    next heartbeat and its partial result is dropped (409 for a run that has finished). The run stays
    listed as cancelled; POST /v1/runs/{id}/retry queues it again."""
    run = get_or_404(session, Run, run_id)
    if not queue.cancel(session, [run_id]):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run_id} is {run.status.value}: only a queued or running run can be cancelled",
        )
    session.expire_all()
    return run_public(get_or_404(session, Run, run_id))
