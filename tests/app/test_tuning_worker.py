"""LR tuning end to end with real training: API → queue → a real worker → η* → a ladder at η* → a
prediction that says what was and was not checked; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.db import make_engine
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import finish_runs, lr_basin, spec_dict

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MUPREDICT_CACHE_DIR", str(tmp_path / "cache"))
    # 80-step proxies have no scaling trend, which the fit-quality gate would rightly refuse to predict from
    # (tests/app/test_fit_quality_api.py); these tests are about tuning and the worker, so the gate is off.
    # The corpus of tiny_spec is written into tmp_path: a data root of these tests, beside the built-in one.
    data_dirs = ["builtin", str(tmp_path)]
    return Settings(_env_file=None, database_url=fresh_db_url, fit_gate=False, data_dirs=data_dirs)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def tiny_spec(tmp_path: Path) -> dict:
    """One block at widths 16…40, 80 steps on standard-library text: a run takes a fraction of a second."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(Path(json.__file__).read_text() * 4 + Path(re.__file__).read_text() * 4)
    return {
        "name": "tiny",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "parametrization": {"base_width": 16},
        "proxy_widths": [16, 24, 32, 40],
        "training": {"steps": 80, "batch_tokens": 256, "eval_tokens": 2048, "lr": 0.02},
        "dataset": {"source": str(corpus)},
    }


def test_tune_then_ladder_then_predict_with_a_real_worker(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    arch_id = api.post("/v1/architectures", json=tiny_spec(tmp_path)).json()["id"]
    queued = api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": []})
    assert queued.status_code == 202, queued.text
    worker = Worker(settings, device="cpu", poll_seconds=0.1)
    assert worker.run(once=True) >= 10  # the grid (5 LRs × 2 seeds), plus any extension
    tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["status"] == "succeeded", tuning["error"]
    curve = tuning["per_width"][0]
    assert curve["width"] == 16 and curve["state"] == "bracketed"
    assert all(point["n"] == 2 for point in curve["curve"])
    lrs = [p["lr"] for p in curve["curve"]]
    best = min(curve["curve"], key=lambda p: p["loss_mean"])
    assert lrs[0] < best["lr"] < lrs[-1]  # the minimum is inside the grid it ended with
    assert tuning["lower"] <= tuning["lr_star"] <= tuning["upper"]
    assert tuning["transfer"] == {}  # widths [] : tuned at the base width only

    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={}).json()
    assert sweep["lr_source"] == "tuned" and sweep["lr"] == tuning["ladder_lr"]
    assert worker.run(once=True) == 4
    runs = api.get("/v1/runs", params={"sweep_id": sweep["id"]}).json()["items"]
    assert {r["lr"] for r in runs} == {tuning["ladder_lr"]} and {r["status"] for r in runs} == {"succeeded"}
    prediction = api.post("/v1/predictions", json={"architecture_id": arch_id, "width": 128})
    assert prediction.status_code == 200, prediction.text
    body = prediction.json()
    assert body["provenance"]["recipe"] == {
        "sweep_id": sweep["id"],
        "lr": tuning["ladder_lr"],
        "lr_source": "tuned",
        "steps": 80,
        "depth": 1,
        "depths": [1],  # a ladder over width at the spec's depth
        "aspect_ratio": None,
        "widths": [16, 24, 32, 40],
        "token_budgets": None,  # a whole-run ladder, not a token-horizon grid
        "warmup_steps": None,
        "warm_start": None,  # trained from scratch, not built by upscaling
    }
    assert any("transfer across width was never checked" in w for w in body["warnings"]), body["warnings"]
    assert not any("never tuned" in w for w in body["warnings"])
    check = api.get(f"/v1/architectures/{arch_id}/coord-check").json()
    assert (check["lr"], check["lr_source"]) == (tuning["ladder_lr"], "tuned")


def test_a_tuning_left_behind_by_a_dead_worker_is_finished_by_the_next(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    arch_id = api.post("/v1/architectures", json=spec_dict(parametrization={"base_width": 32})).json()["id"]
    api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": []})
    engine = make_engine(settings.database_url)
    # Every run's result is stored, but its worker died before advancing the tuning.
    finish_runs(engine, arch_id, loss_of=lr_basin(lambda w: 0.01), advance=False)
    engine.dispose()
    assert api.get(f"/v1/architectures/{arch_id}/tuning").json()["status"] == "running"
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(once=True) == 0  # nothing to train
    tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["status"] == "succeeded" and tuning["lr_star"] == pytest.approx(0.01, rel=0.1)
