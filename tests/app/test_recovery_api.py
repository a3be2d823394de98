"""Failures are recoverable (issue 20, point 3): a failed run can be retried on its own or with its sweep,
and an architecture can be deleted with everything made for it. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import queue
from app.api import create_app
from app.models import Fit, Run, RunMetric, RunStatus, Sweep
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict

TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, database_url=fresh_db_url, api_token=SecretStr("s3cret"))
    with TestClient(create_app(settings), headers=TOKEN) as client:
        yield client


def _engine(api: TestClient) -> Engine:
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    return engine


def _architecture(api: TestClient, **overrides: object) -> int:
    response = api.post("/v1/architectures", json=spec_dict(**overrides))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _fail_all(engine: Engine, error: str = "CorpusError: the corpus holds 12 tokens") -> list[int]:
    """Claim every queued run and fail it for good (one attempt allowed), as a worker would."""
    failed = []
    with Session(engine) as session:
        while (claimed := queue.claim(session, "w", lease_seconds=60)) is not None:
            assert queue.fail(session, claimed.id, "w", error, max_attempts=1) == RunStatus.failed
            failed.append(claimed.id)
    return failed


def test_a_failed_run_is_retried_with_fresh_attempts(api: TestClient) -> None:
    arch = _architecture(api)
    api.post(f"/v1/architectures/{arch}/sweeps", json={"widths": [32, 48]}).raise_for_status()
    first, second = _fail_all(_engine(api))
    failed = api.get(f"/v1/runs/{first}").json()
    assert failed["status"] == "failed" and failed["error"] == "CorpusError: the corpus holds 12 tokens"

    retried = api.post(f"/v1/runs/{first}/retry")
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert body["status"] == "queued" and body["attempts"] == 0 and body["finished_at"] is None
    assert api.get(f"/v1/runs/{second}").json()["status"] == "failed"  # only the one asked for

    again = api.post(f"/v1/runs/{first}/retry")
    assert again.status_code == 409 and f"run {first} is queued" in again.json()["detail"]
    assert api.post("/v1/runs/999999/retry").status_code == 404
    assert api.post(f"/v1/runs/{second}/retry", headers={"Authorization": "Bearer no"}).status_code == 401

    # The retried run trains again like any other and its result replaces the failure.
    finish_runs(_engine(api), arch)
    assert api.get(f"/v1/runs/{first}").json()["status"] == "succeeded"


def test_a_sweep_relaunched_with_retry_failed_requeues_its_failed_runs(api: TestClient) -> None:
    arch = _architecture(api)
    sweep = {"widths": [32, 48, 64], "seeds": [0]}
    api.post(f"/v1/architectures/{arch}/sweeps", json=sweep).raise_for_status()
    with Session(_engine(api)) as session:
        claimed = queue.claim(session, "w", lease_seconds=60)
        assert claimed is not None
        queue.fail(session, claimed.id, "w", "RuntimeError: out of memory", max_attempts=1)
    finish_runs(_engine(api), arch)

    plain = api.post(f"/v1/architectures/{arch}/sweeps", json=sweep).json()
    assert plain["counts"]["failed"] == 1 and plain["counts"]["succeeded"] == 2  # returned as it is

    relaunched = api.post(f"/v1/architectures/{arch}/sweeps", json={**sweep, "retry_failed": True})
    assert relaunched.status_code == 202, relaunched.text
    body = relaunched.json()
    assert body["id"] == plain["id"]
    assert (
        body["counts"]["failed"] == 0 and body["counts"]["queued"] == 1 and body["counts"]["succeeded"] == 2
    )
    assert [r["attempts"] for r in body["runs"] if r["status"] == "queued"] == [0]


def test_deleting_an_architecture_removes_what_was_made_for_it_and_nothing_else(api: TestClient) -> None:
    doomed = _architecture(api, name="doomed")
    kept = _architecture(api, name="kept", activation="swiglu")
    for arch in (doomed, kept):
        api.post(f"/v1/architectures/{arch}/sweeps", json={}).raise_for_status()
        finish_runs(_engine(api), arch)
        assert api.get(f"/v1/architectures/{arch}/fit").status_code == 200  # a stored fit too

    assert (
        api.delete(f"/v1/architectures/{doomed}", headers={"Authorization": "Bearer no"}).status_code == 401
    )
    response = api.delete(f"/v1/architectures/{doomed}")
    assert response.status_code == 204 and response.content == b""

    assert api.get(f"/v1/architectures/{doomed}").status_code == 404
    assert api.delete(f"/v1/architectures/{doomed}").status_code == 404
    assert [a["id"] for a in api.get("/v1/architectures").json()["items"]] == [kept]
    with Session(_engine(api)) as session:
        for model in (Run, Sweep, Fit):
            owners = set(session.scalars(select(model.architecture_id)))
            assert owners == {kept}, model.__name__
        orphans = session.scalar(
            select(func.count()).select_from(RunMetric).where(RunMetric.run_id.not_in(select(Run.id)))
        )
        assert orphans == 0
    assert api.get(f"/v1/architectures/{kept}/fit").status_code == 200
