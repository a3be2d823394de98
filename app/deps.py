"""FastAPI dependencies, as `Annotated` aliases the routes declare (SessionDep, SettingsDep, WriteAccess)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.db_slots import DbSlots, SharedRead
from app.prediction_service import PredictionService
from app.settings import Settings

# Dependencies that do no I/O are `async def`: FastAPI runs a sync dependency in the thread pool, and
# on a hot endpoint each such hop costs more than the endpoint's own work.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for reads (the common case: on SQLite it never waits for the write lock).

    Async, and holding a database slot until the session is closed: the session keeps its connection
    while FastAPI waits for a worker thread to validate the response, so these sessions together must
    never hold the whole pool (app.db_slots). Hot read routes use `DbDep.read` instead."""
    slots: DbSlots = request.app.state.db_slots
    async with slots.session(read=True) as session:
        yield session


async def get_shared_read(request: Request) -> SharedRead:
    """The request's read, shared with identical GETs in flight (the key: path and query string)."""
    return SharedRead(request.app.state.db_slots, (request.url.path, request.url.query))


async def get_read_sessions(request: Request) -> sessionmaker[Session]:
    """The read-session factory itself, for hot endpoints that open their session in the handler's
    worker thread (a generator dependency costs two extra thread-pool hops per request)."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return factory


async def get_write_session(request: Request) -> AsyncIterator[Session]:
    """A session for read-then-write units of work (registering a spec, enqueueing a sweep); holds a
    database slot until it is closed, as `get_session` does."""
    slots: DbSlots = request.app.state.db_slots
    async with slots.session(read=False) as session:
        yield session


async def get_predictions(request: Request) -> PredictionService:
    service: PredictionService = request.app.state.predictions
    return service


# Ids are 32-bit on PostgreSQL: anything larger can name nothing (404 would hide a client bug: 422).
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
PredictionsDep = Annotated[PredictionService, Depends(get_predictions)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(get_read_sessions)]
SharedReadDep = Annotated[SharedRead, Depends(get_shared_read)]

_bearer = HTTPBearer(auto_error=False)


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Write endpoints need the configured bearer token; with none configured the service is open."""
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value()
    # Bytes: compare_digest refuses str with non-ASCII characters (`Bearer é` was a 500).
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="this endpoint needs `Authorization: Bearer <token>` with the MUPREDICT_API_TOKEN value",
            headers={"WWW-Authenticate": "Bearer"},
        )


WriteAccess = Depends(require_token)
