"""FastAPI dependencies, as `Annotated` aliases the routes declare (SessionDep, SettingsDep, WriteAccess)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.fit_cache import FitCache
from app.settings import Settings

# Dependencies that do no I/O are `async def`: FastAPI runs a sync dependency in the thread pool, and
# on a hot endpoint each such hop costs more than the endpoint's own work.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session for reads (the common case: on SQLite it never waits for the write lock)."""
    with request.app.state.read_session_factory() as session:
        yield session


async def get_read_sessions(request: Request) -> sessionmaker[Session]:
    """The read-session factory itself, for hot endpoints that open their session in the handler's
    worker thread (a generator dependency costs two extra thread-pool hops per request)."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return factory


def get_write_session(request: Request) -> Iterator[Session]:
    """A session for read-then-write units of work (registering a spec, enqueueing a sweep)."""
    with request.app.state.session_factory() as session:
        yield session


async def get_fit_cache(request: Request) -> FitCache:
    cache: FitCache = request.app.state.fit_cache
    return cache


# Ids are 32-bit on PostgreSQL: anything larger can name nothing (404 would hide a client bug: 422).
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
FitCacheDep = Annotated[FitCache, Depends(get_fit_cache)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(get_read_sessions)]

_bearer = HTTPBearer(auto_error=False)


async def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Write endpoints need the configured bearer token; with none configured the service is open."""
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value()
    if credentials is None or not secrets.compare_digest(credentials.credentials, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="this endpoint needs `Authorization: Bearer <token>` with the MUPREDICT_API_TOKEN value",
            headers={"WWW-Authenticate": "Bearer"},
        )


WriteAccess = Depends(require_token)
