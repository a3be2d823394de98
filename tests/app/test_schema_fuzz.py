"""Schemathesis over the OpenAPI schema: generated requests never get a 5xx, and every response matches
the schema. The database holds a fitted architecture so the prediction routes answer 200 as well as 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import create_engine

from app.api import create_app
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict

# A token is configured, so schemathesis also checks that write endpoints refuse missing or wrong ones.
TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def fuzzed_app(fresh_db_url: str) -> Iterator[FastAPI]:
    app = create_app(
        Settings(
            _env_file=None,
            database_url=fresh_db_url,
            max_width=512,
            max_runs_per_sweep=8,
            api_token=SecretStr(TOKEN),
        )
    )
    with TestClient(app, headers=AUTH) as client:
        for name, activation in (("gelu", "gelu"), ("swiglu", "swiglu")):
            arch = client.post("/v1/architectures", json=spec_dict(name, activation=activation)).json()
            client.post(f"/v1/architectures/{arch['id']}/sweeps", json={})
            engine = create_engine(fresh_db_url)
            finish_runs(engine, arch["id"])
            engine.dispose()
            # Computed once here, so that fuzzing the route tests the schema, not a CPU under load.
            assert client.get(f"/v1/architectures/{arch['id']}/coord-check").status_code == 200
        yield app


def test_no_server_errors_and_responses_match_the_schema(fuzzed_app: FastAPI) -> None:
    # Every other built-in check runs (no 5xx, responses match the schema, auth enforced, negative data
    # rejected). positive_data_acceptance is left out: a spec has cross-field rules JSON Schema cannot
    # state (width a multiple of head size, betas below 1, ...), and those are rightly 422 with a fix.
    # Each operation is fuzzed by its own Hypothesis strategy; the loop (rather than schemathesis'
    # pytest plugin) lets the schema come from a per-backend fixture.
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

        check()
