"""FastAPI dependencies, as `Annotated` aliases the routes declare (SessionDep, SettingsDep, WriteAccess)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


# Ids are 32-bit on PostgreSQL: anything larger can name nothing (404 would hide a client bug: 422).
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
IdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False)


def require_token(
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
