"""Failures are recoverable (issue 20, point 3): a failed run can be retried on its own or with its sweep,
and an architecture can be deleted with everything made for it. On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import architectures, queue
from app.api import create_app
from app.db import make_engine
from app.models import Fit, Run, RunMetric, RunStatus, Sweep
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import finish_runs, one_run_spec, spec_dict, stored_run
from trainer import ArchitectureSpec

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


def test_cancelling_runs_and_sweeps_then_queueing_them_again(api: TestClient) -> None:
    """Issue 15 point 5: a queued run is cancelled at once, a running one loses its lease (its worker's
    next heartbeat is refused, so it stops and drops the run), finished runs stay; cancelled runs are
    retried like failed ones."""
    arch = _architecture(api)
    sweep = api.post(f"/v1/architectures/{arch}/sweeps", json={"widths": [32, 48, 64]}).json()
    engine = _engine(api)
    with Session(engine) as session:
        running = queue.claim(session, "w", lease_seconds=60)
        assert running is not None
    queued_id = next(r["id"] for r in sweep["runs"] if r["id"] != running.id)

    cancelled = api.delete(f"/v1/runs/{queued_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.delete(f"/v1/runs/{queued_id}")
    assert (
        again.status_code == 409 and "only a queued or running run can be cancelled" in again.json()["detail"]
    )
    assert api.delete("/v1/runs/999999").status_code == 404
    assert api.delete(f"/v1/runs/{queued_id}", headers={"Authorization": "Bearer no"}).status_code == 401

    whole = api.delete(f"/v1/sweeps/{sweep['id']}")
    assert whole.status_code == 200, whole.text
    assert whole.json()["done"] and whole.json()["counts"]["cancelled"] == 3
    with Session(engine) as session:  # the worker that held the running one is refused from now on
        assert not queue.heartbeat(session, running.id, "w", 60, 5, running.steps, 4.0)
        assert not queue.complete(session, running.id, "w", {"status": "succeeded", "final_train_loss": 3.0})
        assert queue.claim(session, "w2", lease_seconds=60) is None  # nothing left to train

    requeued = api.post(
        f"/v1/architectures/{arch}/sweeps", json={"widths": [32, 48, 64], "retry_failed": True}
    )
    assert requeued.json()["counts"]["queued"] == 3
    one = api.delete(f"/v1/runs/{queued_id}")
    assert one.status_code == 200
    assert api.post(f"/v1/runs/{queued_id}/retry").json()["status"] == "queued"
    finish_runs(engine, arch)
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["counts"]["succeeded"] == 3


def test_a_worker_stops_training_a_run_cancelled_under_it(fresh_db_url: str, tmp_path: Path) -> None:
    """The running half of cancellation with a real worker: it notices at its next heartbeat, stops
    training and leaves the run cancelled (no result, no hand-back)."""
    settings = Settings(
        _env_file=None,
        database_url=fresh_db_url,
        heartbeat_seconds=0.2,
        lease_seconds=5,
        cache_dir=tmp_path / "cache",
    )
    engine = make_engine(fresh_db_url)
    with Session(engine) as session:
        arch, _ = architectures.register(session, ArchitectureSpec.model_validate(one_run_spec("builtin")))
        # Far longer than the test: only a cancel ends it.
        queue.enqueue_sweep(session, arch, [16], [0], 100_000, depth=1, lr=0.01, lr_source="spec")
        session.commit()
        run_id = session.scalars(select(Run.id).where(Run.architecture_id == arch.id)).one()
    worker = Worker(settings, device="cpu", poll_seconds=0.1)
    thread = threading.Thread(target=worker.run, kwargs={"max_runs": 1}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while stored_run(settings, run_id).progress_step == 0:  # training, with a heartbeat written
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        with Session(engine) as session:
            assert queue.cancel(session, [run_id]) == [run_id]
        cancelled_at = time.monotonic()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker kept training a cancelled run"
        assert time.monotonic() - cancelled_at < 10
        run = stored_run(settings, run_id)
        assert run.status == RunStatus.cancelled and run.final_train_loss is None and run.lease_owner is None
    finally:
        worker.stopping.set()
        engine.dispose()


def test_an_idle_worker_reaps_expired_leases_now_and_then_not_before_every_claim(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 point 5: with many workers polling an idle queue, reaping before every claim was an
    UPDATE per worker per poll; now at most every quarter lease (here 1 s)."""
    settings = Settings(_env_file=None, database_url=fresh_db_url, lease_seconds=4, heartbeat_seconds=1)
    calls = {"reap": 0, "claim": 0}
    reap, claim = queue.reap_expired, queue.claim

    def counted(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(queue, "reap_expired", counted("reap", reap))
    monkeypatch.setattr(queue, "claim", counted("claim", claim))
    worker = Worker(settings, device="cpu", poll_seconds=0.02)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(1.5)
    worker.stopping.set()
    thread.join(timeout=10)
    assert calls["claim"] >= 10  # it kept polling
    # At start, and once a quarter lease (1 s) later unless a loaded machine started the worker late.
    assert 1 <= calls["reap"] <= 2
