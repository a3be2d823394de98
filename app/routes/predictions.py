"""Predictions and comparisons: thin handlers over the process's PredictionService."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.deps import PredictionsDep
from app.prediction_service import PredictionService
from app.schemas import (
    ComparePublic,
    CompareRequest,
    PredictionBatchPublic,
    PredictionBatchRequest,
    PredictionPublic,
    PredictionRequest,
)

router = APIRouter(prefix="/v1", tags=["predictions"])


@router.post("/predictions", response_model=PredictionPublic, responses={404: {}, 409: {}, 422: {}})
async def predict(request: PredictionRequest, http: Request) -> Response:
    """Predicted loss at `n_params` (or at `width`) with a prediction interval, from the proxies' fit."""
    # The service straight from app.state rather than through a dependency: this is the hot read, and
    # resolving a dependency costs ~40 µs a request here, as much as a memoised answer itself.
    service: PredictionService = http.app.state.predictions
    return Response(await service.predict(request), media_type="application/json")


@router.post("/predictions/batch", response_model=PredictionBatchPublic, responses={422: {}})
async def predict_many(request: PredictionBatchRequest, service: PredictionsDep) -> PredictionBatchPublic:
    """Predictions for many architectures at one N in one request (the dashboard's home page); each
    item holds a prediction or the 404/409 status and message POST /v1/predictions would give."""
    return await service.predict_many(request)


@router.post("/compare", response_model=ComparePublic, responses={404: {}, 409: {}, 422: {}})
def compare(request: CompareRequest, service: PredictionsDep) -> ComparePublic:
    """Rank candidates by expected loss at `n_params`, with P(best) paired by seed."""
    return service.compare(request)
