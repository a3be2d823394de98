"""A ladder over depth through a real worker (issue 17 point 6): the sweep's runs train at their own
depths (the stored parameter counts are the built models'), the fit pools every depth and predicts at a
deeper shape. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.settings import Settings
from app.worker import Worker
from trainer import ArchitectureSpec, count_params

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=fresh_db_url,
        artifact_dir=tmp_path / "artifacts",
        cache_dir=tmp_path / "cache",
        retry_backoff_seconds=0,
        fit_gate=False,  # 24-step proxies: the point is which runs a fit pools, not its trend
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


SPEC = {
    "name": "depth-ladder",
    "n_layers": 2,
    "head_dim": 8,
    "context_length": 32,
    "parametrization": {"base_width": 16, "depth_alpha": 1.0},  # CompleteP: base depth 2
    "proxy_widths": [16],
    "proxy_depths": [1, 2, 3, 4],
    "training": {"steps": 24, "batch_tokens": 256, "eval_tokens": 1024},
}


def test_a_depth_ladder_trains_each_depth_and_predicts_deeper(api: TestClient, settings: Settings) -> None:
    arch_id = api.post("/v1/architectures", json=SPEC).json()["id"]
    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0]})
    assert sweep.status_code == 202, sweep.text
    assert sorted(r["depth"] for r in sweep.json()["runs"]) == [1, 2, 3, 4]
    assert Worker(settings, device="cpu", poll_seconds=0.05).run(once=True) == 4
    done = api.get(f"/v1/sweeps/{sweep.json()['id']}").json()
    spec = ArchitectureSpec.model_validate(SPEC)
    for run in done["runs"]:
        full = api.get(f"/v1/runs/{run['id']}").json()
        assert full["status"] == "succeeded", full["error"]
        # The worker built the run's own depth: the trainer's count of the model it trained.
        total, non_embedding = count_params(spec.at_depth(run["depth"]), 16)
        assert (full["n_params"], full["n_params_non_embedding"]) == (total, non_embedding)
    fit = api.get(f"/v1/architectures/{arch_id}/fit").json()
    assert sorted(p["depth"] for p in fit["points"]) == [1, 2, 3, 4]
    assert not fit["shape"]["testable"]  # one width: shape follows N
    answer = api.post("/v1/predictions", json={"architecture_id": arch_id, "width": 16, "depth": 8})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["n_params"] == count_params(spec.at_depth(8), 16)[1]
    assert body["extrapolation"]["depth"] == 2.0 and body["provenance"]["recipe"]["depths"] == [1, 2, 3, 4]
