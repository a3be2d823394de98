"""Liveness and readiness probes."""

from __future__ import annotations

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app import migrate
from app.settings import Settings

router = APIRouter(tags=["health"])

# Probes run on their own two threads, matching the probe engine's two connections (app.api): neither
# the shared thread pool nor the requests' connection pool can keep readiness from answering.
_probe_threads: RunVar[anyio.CapacityLimiter] = RunVar("mupredict_probe_threads")


def _probe_limiter() -> anyio.CapacityLimiter:
    try:
        return _probe_threads.get()
    except LookupError:
        _probe_threads.set(limiter := anyio.CapacityLimiter(2))
        return limiter


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: bool
    schema_revision: str | None
    schema_head: str | None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (it does not touch the database, so it runs on the event loop)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request, response: Response) -> Readiness:
    """Ready when the database answers within `ready_timeout` and its schema is at the newest migration."""
    state = request.app.state
    settings: Settings = state.settings
    head: str | None = state.schema_head
    current: str | None = None
    reachable = False
    # Reading the schema's revision is the round trip that proves the database answers.
    with anyio.move_on_after(settings.ready_timeout):
        try:
            current = await anyio.to_thread.run_sync(
                migrate.current_revision, state.probe_engine, limiter=_probe_limiter(), abandon_on_cancel=True
            )
            reachable = True
        except SQLAlchemyError:
            pass
    ready = reachable and current == head
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if ready else "not ready",
        database=reachable,
        schema_revision=current,
        schema_head=head,
    )
