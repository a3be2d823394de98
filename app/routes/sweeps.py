"""Sweeps: the proxy runs one request queued, with their status and progress."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app import queue
from app.deps import IdPath, SharedReadDep, WriteAccess, WriteSessionDep
from app.errors import get_or_404
from app.models import Sweep
from app.public import sweep_public
from app.schemas import SweepPublic

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.get("/{sweep_id}", response_model=SweepPublic, responses={404: {}})
async def get_sweep(sweep_id: IdPath, read: SharedReadDep) -> Response:
    # Async, its session inside one worker-thread call: a flood of polls cannot starve the pool, and
    # identical polls in flight together share one read (app.db_slots).
    return await read.json(lambda session: sweep_public(session, get_or_404(session, Sweep, sweep_id)))


@router.delete("/{sweep_id}", response_model=SweepPublic, dependencies=[WriteAccess], responses={404: {}})
def cancel_sweep(sweep_id: IdPath, session: WriteSessionDep) -> SweepPublic:
    """Cancel the sweep's queued and running runs (finished ones stay as they are), including a run it
    shares with another sweep or a tuning; POST the sweep again with retry_failed to queue them again."""
    sweep = get_or_404(session, Sweep, sweep_id)
    queue.cancel(session, [link.run_id for link in sweep.runs])
    session.expire_all()
    return sweep_public(session, get_or_404(session, Sweep, sweep_id))
