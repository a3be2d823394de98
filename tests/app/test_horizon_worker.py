"""Token-horizon sweeps end to end with real training (issue 16): API → trunks and branches in the
queue → a real worker → each branch equals the unbroken run of its budget; a lost checkpoint sends the
trunk back; a killed worker's branch is recovered; budgets validate with 422s that name the fix;
checkpoints are pruned once their branches are stored. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app import queue
from app.api import create_app
from app.db import make_engine
from app.models import utcnow
from app.settings import Settings
from app.worker import Worker

pytestmark = pytest.mark.slow

BUDGETS = [256 * 24, 256 * 32, 256 * 48]  # 24, 32 and 48 steps of 256 tokens


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=fresh_db_url,
        data_dirs=["builtin", str(tmp_path)],
        artifact_dir=tmp_path / "artifacts",
        cache_dir=tmp_path / "cache",
        retry_backoff_seconds=0,
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def wsd_spec(tmp_path: Path) -> dict:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(Path(json.__file__).read_text() * 4 + Path(re.__file__).read_text() * 4)
    return {
        "name": "horizons",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "parametrization": {"base_width": 16},
        "proxy_widths": [16, 24],
        "training": {
            "steps": 48,
            "batch_tokens": 256,
            "eval_tokens": 1024,
            "lr": 0.02,
            "schedule": "wsd",
            "warmup_fraction": 0.25,
            "decay_fraction": 0.25,
        },
        "dataset": {"source": str(corpus)},
    }


def _runs(api: TestClient, sweep_id: int) -> list[dict]:
    return list(api.get("/v1/runs", params={"sweep_id": sweep_id, "limit": 100}).json()["items"])


def test_a_horizon_sweep_trains_trunks_and_branches_that_equal_unbroken_runs(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    arch_id = api.post("/v1/architectures", json=wsd_spec(tmp_path)).json()["id"]
    created = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0], "token_budgets": BUDGETS})
    assert created.status_code == 202, created.text
    sweep = created.json()
    assert sweep["token_budgets"] == BUDGETS and sweep["steps"] == 48
    roles = [(r["width"], r["role"], r["steps"], r["stop_step"], r["resume_step"]) for r in sweep["runs"]]
    # Per width one trunk (planned for 48 steps, stopping at 36, where the last decay starts) and a
    # branch per budget from where its decay starts (warmup 6 steps: a quarter of the shortest budget).
    assert roles == [
        (w, role, steps, stop, resume)
        for w in (16, 24)
        for role, steps, stop, resume in [
            ("branch", 24, None, 18),
            ("branch", 32, None, 24),
            ("trunk", 48, 36, None),
            ("branch", 48, None, 36),
        ]
    ]
    again = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0], "token_budgets": BUDGETS})
    assert again.json()["id"] == sweep["id"]  # idempotent

    worker = Worker(settings, device="cpu", poll_seconds=0.05)
    assert worker.run(once=True) == 8  # two trunks, then their six branches (a branch waits for its trunk)
    runs = _runs(api, sweep["id"])
    assert {r["status"] for r in runs} == {"succeeded"}
    trunks = {r["width"]: r["id"] for r in runs if r["role"] == "trunk"}
    for run in runs:
        if run["role"] == "branch":
            assert run["parent_run_id"] == trunks[run["width"]]
            stored = api.get(f"/v1/runs/{run['id']}").json()
            assert stored["tokens"] == run["steps"] * 256  # the whole horizon, trunk part included
    # Every checkpoint was pruned once its branches were stored.
    assert not list((tmp_path / "artifacts").rglob("*.pt"))

    # A branch is the unbroken run of its budget with the same warmup, step for step.
    from trainer import ArchitectureSpec, train

    spec = ArchitectureSpec.model_validate(wsd_spec(tmp_path))
    branch = next(r for r in runs if r["role"] == "branch" and r["width"] == 16 and r["steps"] == 32)
    unbroken = train(spec, 16, steps=32, seed=0, lr=0.02, warmup_steps=6, device="cpu")
    stored = api.get(f"/v1/runs/{branch['id']}").json()
    assert stored["val_loss"] == pytest.approx(unbroken.val_loss, rel=1e-5)
    # Whole-run fits are untouched by trunks and branches: the ladder has no whole runs yet.
    assert api.get(f"/v1/architectures/{arch_id}/fit").status_code == 409


def test_a_lost_checkpoint_trains_the_trunk_again_and_a_killed_branch_is_recovered(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    arch_id = api.post("/v1/architectures", json=wsd_spec(tmp_path)).json()["id"]
    sweep = api.post(
        f"/v1/architectures/{arch_id}/sweeps",
        json={"seeds": [0], "widths": [16], "token_budgets": BUDGETS[:2]},
    ).json()
    worker = Worker(settings, device="cpu", poll_seconds=0.05)
    assert worker.run(max_runs=1) == 1  # the trunk
    trunk = next(r for r in _runs(api, sweep["id"]) if r["role"] == "trunk")
    assert trunk["status"] == "succeeded"
    files = sorted((tmp_path / "artifacts" / "checkpoints" / f"run-{trunk['id']}").glob("*.pt"))
    assert [f.name for f in files] == ["step-000000018.pt", "step-000000024.pt"]
    files[0].unlink()  # lost (a wiped scratch disk)
    files[1].write_bytes(b"not a checkpoint")  # corrupt

    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        claimed = queue.claim(session, "doomed-worker", lease_seconds=60)  # a worker that then dies
    assert claimed is not None and claimed.role == "branch"
    assert worker.run(max_runs=1) == 1  # the other branch: its checkpoint is unusable
    runs = {r["id"]: r for r in _runs(api, sweep["id"])}
    other = next(r for r in runs.values() if r["role"] == "branch" and r["id"] != claimed.id)
    assert (
        other["status"] == "queued" and "checkpoint" in other["error"] and "trained again" in other["error"]
    )
    assert runs[trunk["id"]]["status"] == "queued"  # sent back to rewrite its checkpoints

    with Session(engine) as session:  # the dead worker's lease runs out; the reaper requeues its branch
        queue.reap_expired(session, settings.max_attempts, now=utcnow() + timedelta(minutes=5))
    engine.dispose()
    assert worker.run(once=True) == 3  # the trunk again, then both branches
    runs = _runs(api, sweep["id"])
    assert {r["status"] for r in runs} == {"succeeded"}
    assert not list((tmp_path / "artifacts").rglob("*.pt"))


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"token_budgets": [256 * 48, 256 * 24]}, "token_budgets", "must increase strictly"),
        ({"token_budgets": [256 * 24, 7000]}, "token_budgets", "multiples of training.batch_tokens"),
        ({"token_budgets": [256, 256 * 24]}, "token_budgets", "no stable phase"),
        ({"token_budgets": [256 * 24], "steps": 24}, "steps", "give steps or token_budgets"),
        ({"token_budgets": [256 * 20_000_000]}, "token_budgets", "past the limit"),
    ],
)
def test_budgets_are_validated_with_the_fix(
    api: TestClient, tmp_path: Path, body: dict, field: str, message: str
) -> None:
    arch_id = api.post("/v1/architectures", json=wsd_spec(tmp_path)).json()["id"]
    refused = api.post(f"/v1/architectures/{arch_id}/sweeps", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert any(e["loc"][-1] == field and message in e["msg"] for e in detail), detail


def test_a_cosine_spec_is_told_to_use_wsd(api: TestClient, tmp_path: Path) -> None:
    spec = wsd_spec(tmp_path)
    spec["training"]["schedule"] = "cosine"
    arch_id = api.post("/v1/architectures", json=spec).json()["id"]
    refused = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"token_budgets": [256 * 24]})
    assert refused.status_code == 422
    assert 'set training.schedule to "wsd"' in refused.json()["detail"][0]["msg"]
