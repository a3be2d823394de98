"""The FastAPI application: one factory wires settings, database and routes."""

from __future__ import annotations

import gc
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import errors, migrate
from app.db import for_reads, make_engine, session_factory
from app.db_slots import DatabaseBusy, DbSlots
from app.deps import require_token
from app.fits import FitFailed, NoScalingTrend, NotEnoughRuns
from app.guards import RequestGuard, routes_calling
from app.prediction_service import PredictionService
from app.routes import architectures, dashboard, grid, health, predictions, runs, sweeps, tuning
from app.settings import Settings, get_settings

OFFLINE_DOCS = "/static-offline-docs"  # where FastAPIOffline serves its packaged assets


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )
    probe_engine = _probe_engine(settings)
    if settings.auto_migrate:
        migrate.upgrade(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Everything allocated so far (torch, numpy, scipy, the pydantic schemas: ~280k objects) lives as
        # long as the process. Moving it out of the collector's reach keeps each full collection from
        # walking it: unfrozen, one took ~0.4 s on the 2-core box, stalling every request in flight.
        gc.collect()
        gc.freeze()
        yield
        engine.dispose()
        probe_engine.dispose()

    # FastAPIOffline: FastAPI with /docs loading Swagger UI from the installed package (under
    # /static-offline-docs) instead of a CDN; /redoc is below, from the same package.
    app = FastAPIOffline(
        redoc_url=None,
        title="mupredict",
        version="0.1.0",
        summary="Predicted loss of a transformer architecture at N parameters, from small μP proxies.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="mupredict - ReDoc",
            redoc_js_url=f"{root}{OFFLINE_DOCS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{OFFLINE_DOCS}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc's bundle always draws its maker's logo from their CDN; this policy stops the browser
        # from calling out (the logo hides itself when it does not load).
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.state.read_engine = for_reads(engine)
    app.state.read_session_factory = session_factory(app.state.read_engine)
    # One connection stays out of the slots: see app.db_slots for why that makes a deadlock impossible.
    app.state.db_slots = DbSlots(
        app.state.session_factory,
        app.state.read_session_factory,
        capacity=settings.db_pool_size + settings.db_max_overflow - 1,
        timeout=settings.db_pool_timeout,
    )
    app.state.probe_engine = for_reads(probe_engine)
    app.state.schema_head = migrate.head_revision()  # parses every migration script: once, not per probe
    app.state.predictions = PredictionService(settings, app.state.read_engine, app.state.read_session_factory)
    routers = [m.router for m in (health, architectures, grid, tuning, sweeps, runs, predictions, dashboard)]
    for router in routers:
        app.include_router(router)
    app.mount("/static", dashboard.static_files(), name="static")
    app.add_middleware(RequestGuard, settings=settings, protected=routes_calling(routers, require_token))
    errors.install(app)

    @app.exception_handler(NotEnoughRuns)
    async def _not_enough_runs(_request: Request, exc: NotEnoughRuns) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={"detail": str(exc), "runs": exc.counts, "widths_needed": exc.needed},
        )

    @app.exception_handler(NoScalingTrend)
    async def _no_scaling_trend(_request: Request, exc: NoScalingTrend) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={
                "detail": str(exc),
                "architecture_id": exc.architecture_id,
                "reasons": exc.quality.reasons,
                "quality": exc.quality.to_dict(),
            },
        )

    @app.exception_handler(FitFailed)
    async def _fit_failed(_request: Request, exc: FitFailed) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(exc)})

    # A database too busy to answer in time is the server's temporary state, not a bug: 503, retry later.
    @app.exception_handler(DatabaseBusy)
    async def _database_busy(_request: Request, exc: DatabaseBusy) -> JSONResponse:
        return _busy(str(exc))

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(_request: Request, _exc: PoolTimeout) -> JSONResponse:
        return _busy(
            f"no database connection came free within {settings.db_pool_timeout:g} s; retry shortly "
            "(or raise MUPREDICT_DB_POOL_SIZE / MUPREDICT_DB_MAX_OVERFLOW)"
        )

    return app


def _busy(detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": detail},
        headers={"Retry-After": "1"},
    )


def _probe_engine(settings: Settings) -> Engine:
    """`/readyz`'s own two connections, apart from the pool the requests share: readiness must answer
    (and say "not ready" within `ready_timeout`) even while a flood of requests keeps every slot busy."""
    # libpq takes whole seconds.
    seconds = max(1, math.ceil(settings.ready_timeout))
    connect_timeout = {} if settings.is_sqlite else {"connect_args": {"connect_timeout": seconds}}
    return make_engine(
        settings.database_url,
        pool_size=1,
        max_overflow=1,
        pool_timeout=settings.ready_timeout,
        **connect_timeout,
    )
