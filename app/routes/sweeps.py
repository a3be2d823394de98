"""Sweeps: the proxy runs one request queued, with their status and progress."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import IdPath, SessionDep
from app.models import Sweep
from app.schemas import SweepPublic
from app.views import get_or_404, sweep_public

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.get("/{sweep_id}", response_model=SweepPublic, responses={404: {}})
def get_sweep(sweep_id: IdPath, session: SessionDep) -> SweepPublic:
    return sweep_public(session, get_or_404(session, Sweep, sweep_id))
