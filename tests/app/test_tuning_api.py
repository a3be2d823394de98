"""LR tuning, the transfer check and the coordinate check through the API, on SQLite and PostgreSQL.

Runs are completed through the real queue with losses from a known LR basin (tests/app/api_helpers.py),
so the tuning's grid extension, η*, the transfer verdict and what sweeps and predictions do with them
can be checked against the truth; test_tuning_worker.py trains real models through a real worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api import create_app
from app.db import make_engine
from app.models import Run
from app.settings import Settings
from tests.app.api_helpers import finish_runs, lr_basin, spec_dict


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=fresh_db_url, max_width=1024, max_runs_per_tuning=200)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def _create(api: TestClient, **overrides: object) -> dict:
    body = spec_dict(**{"parametrization": {"base_width": 32}, "training": {"lr": 0.01}, **overrides})
    response = api.post("/v1/architectures", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _finish(settings: Settings, arch_id: int, optimum: float | None = None, drift: float = 0.0) -> None:
    """Complete every queued run; the LR basin's minimum is optimum × (width / 32)^drift."""
    engine = make_engine(settings.database_url)
    try:
        if optimum is None:
            finish_runs(engine, arch_id)
        else:
            finish_runs(engine, arch_id, loss_of=lr_basin(lambda w: optimum * (w / 32) ** drift))
    finally:
        engine.dispose()


def test_tuning_queues_the_grid_at_every_shape_and_is_idempotent(api: TestClient) -> None:
    arch = _create(api)
    assert arch["tuning"] is None
    response = api.post(f"/v1/architectures/{arch['id']}/tuning")
    assert response.status_code == 202, response.text
    tuning = response.json()
    assert tuning["status"] == "queued"
    assert tuning["params"]["widths"] == [128, 256]  # ×4 and ×8 the base width by default
    assert tuning["params"]["depths"] == []  # width-only μP: no depth check by default
    assert tuning["runs"]["queued"] == 3 * 5 * 2  # 3 widths × 5 LRs × 2 seeds
    assert [c["width"] for c in tuning["per_width"]] == [32, 128, 256]
    summary = api.get(f"/v1/architectures/{arch['id']}").json()["tuning"]
    assert (summary["id"], summary["status"], summary["lr_star"]) == (tuning["id"], "queued", None)
    again = api.post(f"/v1/architectures/{arch['id']}/tuning", json={})
    assert again.status_code == 202 and again.json()["id"] == tuning["id"]
    runs = api.get("/v1/runs", params={"architecture_id": arch["id"], "limit": 500}).json()["items"]
    lrs = sorted({r["lr"] for r in runs})
    assert lrs == pytest.approx([0.01 * math.sqrt(2) ** k for k in range(-2, 3)])
    assert {r["depth"] for r in runs} == {2}


def test_tuning_extends_finds_lr_star_and_sweeps_train_at_it(api: TestClient, settings: Settings) -> None:
    arch = _create(api)
    arch_id = arch["id"]
    api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": [128, 256]})
    _finish(settings, arch_id, optimum=0.05)  # above the first grid's top (0.02): two extensions
    tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["status"] == "succeeded", tuning["error"]
    assert tuning["lr_star"] == pytest.approx(0.05, rel=0.1)
    assert tuning["lower"] < tuning["lr_star"] < tuning["upper"]
    assert tuning["ladder_lr"] == float(f"{tuning['lr_star']:.3g}")
    base = tuning["per_width"][0]
    assert base["extensions"] == 2 and len(base["curve"]) == 9
    assert all(p["n"] == 2 and p["loss_sd"] is not None for p in base["curve"])
    width = tuning["transfer"]["width"]
    assert width["verdict"] == "transfers", width["reason"]
    assert width["sizes"] == [32, 128, 256] and width["lower"] <= 0 <= width["upper"]

    assert api.get(f"/v1/architectures/{arch_id}").json()["tuning"] == {
        "id": tuning["id"],
        "status": "succeeded",
        "lr_star": tuning["lr_star"],
        "lower": tuning["lower"],
        "upper": tuning["upper"],
        "ladder_lr": tuning["ladder_lr"],
        "transfer": {"width": "transfers"},
    }
    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={}).json()
    assert (sweep["lr"], sweep["lr_source"]) == (tuning["ladder_lr"], "tuned")
    assert {r["lr"] for r in sweep["runs"]} == {tuning["ladder_lr"]}
    pinned = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"lr": 0.003, "widths": [32]}).json()
    assert (pinned["lr"], pinned["lr_source"]) == (0.003, "pinned")


def test_predictions_say_when_the_lr_is_untuned_or_drifts(api: TestClient, settings: Settings) -> None:
    arch_id = _create(api)["id"]
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [32, 48, 64, 96]})
    _finish(settings, arch_id)
    untuned = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8}).json()
    assert any("never tuned" in w for w in untuned["warnings"]), untuned["warnings"]
    assert untuned["provenance"]["recipe"]["lr"] == 0.01
    assert untuned["provenance"]["recipe"]["lr_source"] == "spec"

    api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": [128, 256]})
    running = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8}).json()
    # "running" already: the tuning's centre point at width 32 is the sweep's finished run, reused.
    assert any("LR tuning 1 is still running" in w for w in running["warnings"]), running["warnings"]
    _finish(settings, arch_id, optimum=0.02, drift=-1.0)  # SP-like: η* ∝ 1/width
    tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["status"] == "succeeded" and tuning["transfer"]["width"]["verdict"] == "drifts"
    stale = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8}).json()
    assert any("not at the tuned η*" in w for w in stale["warnings"]), stale["warnings"]
    assert any("transfer across width drifts" in w for w in stale["warnings"]), stale["warnings"]

    # A new ladder at η*: the fit pools only its runs (not the untuned ladder, not the tuning's).
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [32, 48, 64, 96]})
    _finish(settings, arch_id)
    fresh = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8}).json()
    assert fresh["provenance"]["recipe"]["lr_source"] == "tuned"
    assert not any("not at the tuned η*" in w for w in fresh["warnings"])
    assert any("transfer across width drifts" in w for w in fresh["warnings"])
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        lrs = conn.scalars(select(Run.lr).where(Run.id.in_(fresh["provenance"]["run_ids"]))).all()
    engine.dispose()
    assert set(lrs) == {tuning["ladder_lr"]} and len(lrs) == 4
    compared = api.post(
        "/v1/compare", json={"architecture_ids": [arch_id, _ladder(api, settings)], "n_params": 1e8}
    ).json()
    notes = {c["architecture_id"]: c["warnings"] for c in compared["candidates"]}
    assert any("drifts" in w for w in notes[arch_id])


def _ladder(api: TestClient, settings: Settings) -> int:
    """A second, untuned architecture with a finished ladder."""
    other = _create(api, name="other", activation="swiglu")["id"]
    api.post(f"/v1/architectures/{other}/sweeps", json={"widths": [32, 48, 64, 96]})
    _finish(settings, other)
    return other


def test_a_ladder_at_another_horizon_says_the_horizon_was_never_checked(
    api: TestClient, settings: Settings
) -> None:
    arch_id = _create(api)["id"]
    api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": [128, 256]})
    _finish(settings, arch_id, optimum=0.01)
    tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["horizon_rule"] is None and tuning["per_horizon"] == []
    assert "horizons" not in tuning["params"]  # the key a tuning had before the horizon check existed
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [32, 48, 64, 96], "steps": 1200})
    _finish(settings, arch_id)
    warned = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8}).json()
    horizon = [w for w in warned["warnings"] if "tuned for 300-step runs" in w]
    assert horizon and "token_budgets [614400, 2457600]" in horizon[0], warned["warnings"]


def test_a_tuning_that_cannot_bracket_fails_with_the_fix(api: TestClient, settings: Settings) -> None:
    arch_id = _create(api)["id"]
    api.post(f"/v1/architectures/{arch_id}/tuning", json={"widths": [], "max_extensions": 1})
    _finish(settings, arch_id, optimum=5.0)
    tuning = api.get(f"/v1/architectures/{arch_id}/tuning").json()
    assert tuning["status"] == "failed" and tuning["lr_star"] is None
    assert "not bracketed" in tuning["error"] and "max_extensions" in tuning["error"]
    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={}).json()
    assert sweep["lr_source"] == "spec"  # a failed tuning gives no η*


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"grid_points": 2}, "body", "cannot bracket"),
        ({"seeds": [3, 3]}, "body", "at least two different seeds"),
        ({"seeds": [0]}, "seeds", "at least 2"),
        ({"grid_factor": 1.0}, "body", "grid_factor"),
        ({"widths": [100]}, "widths", "not a multiple of head size 16"),
        ({"widths": [2048]}, "widths", "MUPREDICT_MAX_WIDTH"),
        ({"depths": [0]}, "depths", "must lie in [1, 256]"),
        ({"widths": [64, 128, 256, 512], "seeds": [0, 1, 2, 3]}, "seeds", "MUPREDICT_MAX_RUNS_PER_TUNING"),
        ({"steps": 10**7}, "steps", "MUPREDICT_MAX_TOKENS_PER_RUN"),
        ({"token_budgets": [3000]}, "token_budgets", "not positive multiples of training.batch_tokens 2048"),
        ({"token_budgets": [2048 * 10**7]}, "steps", "MUPREDICT_MAX_TOKENS_PER_RUN"),
        ({"speed": "fast"}, "speed", "Extra inputs are not permitted"),
    ],
)
def test_bad_tuning_requests_are_422_with_the_fix(
    api: TestClient, body: dict, field: str, message: str
) -> None:
    arch_id = _create(api)["id"]
    response = api.post(f"/v1/architectures/{arch_id}/tuning", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(field in [str(p) for p in e["loc"]] and message in e["msg"] for e in errors), errors


def test_missing_things_are_404(api: TestClient) -> None:
    arch_id = _create(api)["id"]
    response = api.get(f"/v1/architectures/{arch_id}/tuning")
    assert response.status_code == 404 and f"/v1/architectures/{arch_id}/tuning" in response.json()["detail"]
    assert api.post("/v1/architectures/999999/tuning").status_code == 404
    assert api.get("/v1/architectures/999999/coord-check").status_code == 404


def test_coordinate_check_is_computed_once_and_fails_under_sp(api: TestClient) -> None:
    mup = _create(api)["id"]
    first = api.get(f"/v1/architectures/{mup}/coord-check")
    assert first.status_code == 200, first.text
    check = first.json()
    assert check["verdict"] == "passes" and check["lr_source"] == "spec" and check["depth"] is None
    assert check["width"]["sizes"] == [64, 128, 256, 512]
    names = {c["name"] for c in check["width"]["coordinates"]}
    assert {"embedding", "logits", "block 0 attention logits", "block 1 residual stream"} <= names
    again = api.get(f"/v1/architectures/{mup}/coord-check").json()
    assert again["created_at"] == check["created_at"]  # stored, not recomputed
    sp = _create(api, name="sp", parametrization={"base_width": 32, "mode": "sp"})["id"]
    assert api.get(f"/v1/architectures/{sp}/coord-check").json()["verdict"] == "fails"
    deep = _create(api, name="deep", parametrization={"base_width": 32, "depth_alpha": 1.0, "base_depth": 2})[
        "id"
    ]
    both = api.get(f"/v1/architectures/{deep}/coord-check").json()
    assert both["depth"]["sizes"] == [2, 4, 8, 16] and both["depth"]["verdict"] == "passes"


def test_a_coordinate_check_too_large_for_the_api_process_is_refused(api: TestClient) -> None:
    huge = _create(
        api, name="huge", n_layers=24, head_dim=64, parametrization={"base_width": 1024}, proxy_widths=[1024]
    )["id"]
    response = api.get(f"/v1/architectures/{huge}/coord-check")
    assert response.status_code == 409
    assert "MUPREDICT_COORD_CHECK_MAX_PARAMS" in response.json()["detail"]
    assert "width 8192" in response.json()["detail"]
