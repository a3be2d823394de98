"""The normalized transformer through the product (issue 18 point 4): an ngpt spec is registered with
its family defaults, a field that means nothing for it is a 422 with the reason, and a real worker
trains its ladder. On SQLite and PostgreSQL."""

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

SPEC = {
    "name": "nugpt-tiny",
    "family": "ngpt",
    "n_layers": 1,
    "head_dim": 8,
    "context_length": 32,
    "parametrization": {"base_width": 16},
    "proxy_widths": [16, 32],
    "training": {"steps": 16, "batch_tokens": 256, "eval_tokens": 1024, "lr": 0.02},
}


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None, database_url=fresh_db_url, cache_dir=tmp_path / "cache", retry_backoff_seconds=0
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_an_ngpt_ladder_is_registered_and_trained(api: TestClient, settings: Settings) -> None:
    created = api.post("/v1/architectures", json=SPEC)
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert (spec["parametrization"]["mode"], spec["activation"], spec["positions"]) == (
        "nugpt",
        "swiglu",
        "rope",
    )
    refused = api.post("/v1/architectures", json={**SPEC, "name": "bad", "norm_gains": True})
    assert refused.status_code == 422 and "nGPT has no norm layers" in refused.text
    sweep = api.post(f"/v1/architectures/{created.json()['id']}/sweeps", json={"seeds": [0]}).json()
    assert Worker(settings, device="cpu", poll_seconds=0.05).run(once=True) == 2
    stored = ArchitectureSpec.model_validate(spec)
    for run in api.get(f"/v1/sweeps/{sweep['id']}").json()["runs"]:
        full = api.get(f"/v1/runs/{run['id']}").json()
        assert full["status"] == "succeeded", full["error"]
        assert full["n_params"] == count_params(stored, run["width"])[0]
