"""The FastAPI application: one factory wires settings, database and routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from app import migrate
from app.db import for_reads, make_engine, session_factory
from app.fit_cache import FitCache
from app.fits import FitFailed, NoScalingTrend, NotEnoughRuns
from app.routes import architectures, dashboard, health, predictions, runs, sweeps, tuning
from app.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
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

    app = FastAPI(
        title="mupredict",
        version="0.1.0",
        summary="Predicted loss of a transformer architecture at N parameters, from small μP proxies.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)
    app.state.read_engine = for_reads(engine)
    app.state.read_session_factory = session_factory(app.state.read_engine)
    app.state.fit_cache = FitCache()
    for module in (health, architectures, tuning, sweeps, runs, predictions, dashboard):
        app.include_router(module.router)
    app.mount("/static", dashboard.static_files(), name="static")

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

    return app
