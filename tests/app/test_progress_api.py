"""Progress and cost (issue 20, point 8): a training run's tokens/s and ETA from its heartbeats, shown by
`Client.wait_for` (plain lines when piped), and the Submit check's FLOPs and wall-time estimate."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import queue
from app.api import create_app
from app.client import Client
from app.limits import run_flops
from app.models import Run
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict
from tests.app.live_server import live_server
from trainer import ArchitectureSpec


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(_env_file=None, database_url=fresh_db_url))) as client:
        yield client


def _engine(api: TestClient) -> Engine:
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    return engine


def _training_run(api: TestClient, step: int, tokens_per_second: float) -> queue.ClaimedRun:
    """Queue a two-run sweep and start one: claimed, with one heartbeat at `step`."""
    arch = api.post("/v1/architectures", json=spec_dict()).json()
    api.post(f"/v1/architectures/{arch['id']}/sweeps", json={"widths": [32, 48]}).raise_for_status()
    with Session(_engine(api)) as session:
        claimed = queue.claim(session, "w", lease_seconds=60)
        assert claimed is not None
        assert queue.heartbeat(
            session, claimed.id, "w", 60, step, claimed.steps, 4.2, [(step, 4.2)], tokens_per_second
        )
    return claimed


def test_a_training_run_reports_its_throughput_and_time_left(api: TestClient) -> None:
    claimed = _training_run(api, step=100, tokens_per_second=12_345.0)
    run = api.get(f"/v1/runs/{claimed.id}").json()
    assert run["status"] == "running" and run["tokens_per_second"] == 12_345.0
    started, beat = (datetime.fromisoformat(run[k]) for k in ("started_at", "heartbeat_at"))
    elapsed = (beat - started).total_seconds()
    assert run["eta_seconds"] == pytest.approx(elapsed / 100 * (claimed.steps - 100))
    listed = api.get("/v1/runs", params={"status": "running"}).json()["items"]
    assert [r["eta_seconds"] for r in listed] == [run["eta_seconds"]]
    queued = api.get("/v1/runs", params={"status": "queued"}).json()["items"]
    assert [r["eta_seconds"] for r in queued] == [None] and queued[0]["tokens_per_second"] is None


def test_wait_for_prints_lines_with_each_training_runs_speed_when_piped(
    api: TestClient, fresh_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    claimed = _training_run(api, step=150, tokens_per_second=9_876.0)
    served = live_server(create_app(Settings(_env_file=None, database_url=fresh_db_url)))
    with served as url, Client(url) as client, pytest.raises(TimeoutError):
        client.wait_for(1, poll_seconds=0.01, timeout=0)
    out = capsys.readouterr().out  # pytest's capture is not a terminal: plain lines, no bars
    assert "sweep 1: " in out and "0 done · 1 running · 1 queued" in out
    assert f"run {claimed.id} · width {claimed.width} · seed 0: " in out and "9,876 tok/s · ETA " in out

    with Session(_engine(api)) as session:
        queue.release(session, claimed.id, "w")  # handed back, then both runs finish
    finish_runs(_engine(api), claimed.architecture_id)
    with live_server(create_app(Settings(_env_file=None, database_url=fresh_db_url))) as url:
        Client(url).wait_for(1, poll_seconds=0.01)
    out = capsys.readouterr().out
    assert "sweep 1: 100% 2 done · 0 running · 0 queued" in out


def test_validate_estimates_the_ladders_flops_and_time(api: TestClient) -> None:
    spec = ArchitectureSpec.model_validate(spec_dict())
    before = api.post("/v1/architectures/validate", json=spec_dict()).json()
    flops = [run_flops(spec, w, spec.training.steps) for w in spec.proxy_widths]
    assert [p["flops"] for p in before["proxies"]] == pytest.approx(flops)
    assert before["ladder_flops"] == pytest.approx(sum(flops))
    assert before["ladder_seconds"] is None and before["throughput_basis"] is None

    arch = api.post("/v1/architectures", json=spec_dict()).json()
    api.post(f"/v1/architectures/{arch['id']}/sweeps", json={}).raise_for_status()
    finish_runs(_engine(api), arch["id"])  # stand-in results: device "cpu", 1 s each
    with Session(_engine(api)) as session:
        rates = [f / s for f, s in session.execute(select(Run.flops, Run.wall_seconds))]
    after = api.post("/v1/architectures/validate", json=spec_dict()).json()
    assert after["ladder_seconds"] == pytest.approx(sum(flops) / statistics.median(rates))
    assert (
        after["throughput_basis"] == f"the median throughput of the last {len(rates)} finished run(s) on cpu"
    )
