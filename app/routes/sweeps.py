"""Sweeps: the proxy runs one request queued, with their status and progress."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import IdPath, SharedReadDep
from app.models import Sweep
from app.schemas import SweepPublic
from app.views import get_or_404, sweep_public

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.get("/{sweep_id}", response_model=SweepPublic, responses={404: {}})
async def get_sweep(sweep_id: IdPath, read: SharedReadDep) -> Response:
    # Async, its session inside one worker-thread call: a flood of polls cannot starve the pool, and
    # identical polls in flight together share one read (app.db_slots).
    return await read.json(lambda session: sweep_public(session, get_or_404(session, Sweep, sweep_id)))
