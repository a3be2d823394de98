"""What every request passes before its body is read: the bearer token of write routes, and a size cap.

FastAPI reads and parses a route's body before it resolves the route's dependencies, so the
`WriteAccess` dependency alone let anyone without the token make the server read, parse and validate
bodies of any size. This ASGI middleware answers 401 for a write route without the token, and 413 for a
body past `max_body_bytes`, before the route sees a byte of the body. The dependency stays: it puts the
scheme in the OpenAPI schema, and guards the routes wherever this middleware is not installed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable

from fastapi import HTTPException, status
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

UNAUTHORIZED = "this endpoint needs `Authorization: Bearer <token>` with the MUPREDICT_API_TOKEN value"


def token_matches(authorization: bytes | None, expected: str) -> bool:
    """`Authorization: Bearer <expected>`, compared as bytes in constant time (compare_digest refuses
    str with non-ASCII characters: `Bearer é` raised TypeError, a 500)."""
    if authorization is None:
        return False
    scheme, _, token = authorization.partition(b" ")
    return scheme.lower() == b"bearer" and secrets.compare_digest(token.strip(), expected.encode())


def _calls(dependant: Dependant, function: Callable[..., object]) -> bool:
    return dependant.call is function or any(_calls(d, function) for d in dependant.dependencies)


def routes_calling(routers: Iterable[APIRouter], dependency: Callable[..., object]) -> list[APIRoute]:
    """The routes of `routers` that depend on `dependency`, directly or through other dependencies.

    Read from the routers (included without a prefix of their own), not from app.routes: FastAPI
    keeps an included router there as one opaque entry."""
    routes = (route for router in routers for route in router.routes)
    return [r for r in routes if isinstance(r, APIRoute) and _calls(r.dependant, dependency)]


def too_large(limit: int) -> str:
    return (
        f"the request body exceeds {limit} bytes (MUPREDICT_MAX_BODY_BYTES): send a smaller body "
        "(a spec is about 1 kB)"
    )


class RequestGuard:
    """ASGI middleware: token first (for `protected` routes, when a token is configured), then size."""

    def __init__(self, app: ASGIApp, settings: Settings, protected: list[APIRoute]) -> None:
        self.app, self.settings, self.protected = app, settings, protected

    def _needs_token(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        token = self.settings.api_token
        if (
            token is not None
            and self._needs_token(scope)
            and not token_matches(headers.get(b"authorization"), token.get_secret_value())
        ):
            response = JSONResponse(
                {"detail": UNAUTHORIZED},
                status_code=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse(
                {"detail": too_large(limit)}, status_code=status.HTTP_413_CONTENT_TOO_LARGE
            )
            await response(scope, receive, send)
            return
        received = 0

        async def capped() -> Message:
            # A body sent without Content-Length (chunked) is counted as it arrives; the route's
            # exception handling turns this into the same 413.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large(limit))
            return message

        await self.app(scope, capped, send)
