"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app import migrate

router = APIRouter(tags=["health"])


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
def readyz(request: Request, response: Response) -> Readiness:
    """Ready when the database answers and its schema is at the newest migration."""
    engine = request.app.state.engine
    head = migrate.head_revision()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.current_revision(engine)
        reachable = True
    except SQLAlchemyError:
        current, reachable = None, False
    ready = reachable and current == head
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if ready else "not ready",
        database=reachable,
        schema_revision=current,
        schema_head=head,
    )
