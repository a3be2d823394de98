"""Schemathesis over the OpenAPI schema: generated requests never get a 5xx, and every response matches
the schema. The database holds a fitted architecture so the prediction routes answer 200 as well as 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine

from app.api import create_app
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict


@pytest.fixture
def fuzzed_app(fresh_db_url: str) -> Iterator[FastAPI]:
    app = create_app(Settings(_env_file=None, database_url=fresh_db_url, max_width=512, max_runs_per_sweep=8))
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for name, activation in (("gelu", "gelu"), ("swiglu", "swiglu")):
            arch = client.post("/v1/architectures", json=spec_dict(name, activation=activation)).json()
            client.post(f"/v1/architectures/{arch['id']}/sweeps", json={})
            engine = create_engine(fresh_db_url)
            finish_runs(engine, arch["id"])
            engine.dispose()
        yield app


@pytest.fixture
def api_schema(fuzzed_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()
