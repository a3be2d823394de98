"""μP upscaling through the product (issue 19 points 2–3): POST /v1/runs/{id}/upscale queues a
continuation of a finished run, widened; a real worker trains it from the parent's final state (written
by the parent when it knows of the continuation, else rewritten by a trunk of the parent's recipe);
with no noise and a vanishing LR it starts at the parent's own loss; upscaled runs never enter a
from-scratch fit; impossible requests get 404/409/422 with the fix. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.client import Client
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import forward

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=fresh_db_url,
        data_dirs=["builtin", str(tmp_path)],
        artifact_dir=tmp_path / "artifacts",
        cache_dir=tmp_path / "cache",
        retry_backoff_seconds=0,
        max_width=256,
        fit_gate=False,  # 16-step proxies: the point is which runs a fit pools, not its trend
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def spec(tmp_path: Path, **fields: object) -> dict:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(Path(json.__file__).read_text() * 4 + Path(re.__file__).read_text() * 4)
    return {
        "name": "upscale",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "parametrization": {"base_width": 16},
        "proxy_widths": [16],
        # No weight decay: it is independent of the LR, so a vanishing LR would not freeze the weights.
        "training": {"steps": 24, "batch_tokens": 256, "eval_tokens": 1024, "lr": 0.02, "weight_decay": 0.0},
        "dataset": {"source": str(corpus)},
        **fields,
    }


def test_an_upscaled_continuation_starts_from_the_parents_final_state(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    arch_id = api.post("/v1/architectures", json=spec(tmp_path)).json()["id"]
    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [16], "seeds": [0]}).json()
    worker = Worker(settings, device="cpu", poll_seconds=0.05)
    assert worker.run(once=True) == 1
    parent = api.get(f"/v1/runs/{sweep['runs'][0]['id']}").json()
    assert parent["status"] == "succeeded"

    # Trained before anyone asked: its final state was not kept, so a trunk of its recipe rewrites it.
    body = {"width": 32, "noise": 0.0, "steps": 1, "lr": 1e-9}
    created = api.post(f"/v1/runs/{parent['id']}/upscale", json=body)
    assert created.status_code == 202, created.text
    child = created.json()
    assert (child["role"], child["width"], child["parent_run_id"], child["noise"]) == (
        "upscaled",
        32,
        parent["id"],
        0.0,
    )
    assert child["resume_step"] == 24
    assert api.post(f"/v1/runs/{parent['id']}/upscale", json=body).json()["id"] == child["id"]  # idempotent
    assert worker.run(once=True) == 3  # the child finds no checkpoint, the trunk writes it, the child
    done = api.get(f"/v1/runs/{child['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    trunk = api.get(f"/v1/runs/{done['parent_run_id']}").json()
    assert (trunk["role"], trunk["width"], trunk["stop_step"], trunk["status"]) == (
        "trunk",
        16,
        24,
        "succeeded",
    )
    # The same function, widened: with no noise and a vanishing LR the wide model's loss is the parent's.
    assert done["val_loss"] == pytest.approx(parent["val_loss"], abs=1e-4)
    assert api.get(f"/v1/runs/{parent['id']}").json()["val_loss"] == parent["val_loss"]  # left as it was
    assert len(list((tmp_path / "artifacts").rglob("*.pt"))) == 1  # the final state, kept for more

    # A second continuation reads the kept state: nothing is trained again.
    noisy = api.post(f"/v1/runs/{parent['id']}/upscale", json={"width": 48, "noise": 1.0, "steps": 6}).json()
    assert noisy["parent_run_id"] == trunk["id"]
    assert worker.run(once=True) == 1
    trained = api.get(f"/v1/runs/{noisy['id']}").json()
    assert (
        trained["status"] == "succeeded"
        and trained["n_params_non_embedding"] > parent["n_params_non_embedding"]
    )
    # It can be upscaled in turn: it kept no final state (nothing asked for one while it trained), so
    # it trains again from its own kept start, now writing its end, and gives the same result.
    grand = api.post(f"/v1/runs/{noisy['id']}/upscale", json={"width": 96, "steps": 2}).json()
    assert worker.run(once=True) == 3
    assert api.get(f"/v1/runs/{grand['id']}").json()["status"] == "succeeded"
    assert api.get(f"/v1/runs/{noisy['id']}").json()["val_loss"] == pytest.approx(
        trained["val_loss"], rel=1e-6
    )
    # None of these counts toward the from-scratch ladder: its fit pools whole runs trained from scratch.
    assert api.get(f"/v1/architectures/{arch_id}").json()["runs"]["succeeded_widths"] == 4  # 16…96, any way
    refused = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e6})
    assert refused.status_code == 409 and "1 proxy size(s) finished" in refused.json()["detail"]


def test_bad_upscale_requests_say_what_to_change(api: TestClient, settings: Settings, tmp_path: Path) -> None:
    arch_id = api.post("/v1/architectures", json=spec(tmp_path)).json()["id"]
    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [16], "seeds": [0]}).json()
    run_id = sweep["runs"][0]["id"]
    queued = api.post(f"/v1/runs/{run_id}/upscale", json={"width": 32})
    assert queued.status_code == 409 and "only a succeeded run can be upscaled" in queued.json()["detail"]
    assert Worker(settings, device="cpu", poll_seconds=0.05).run(once=True) == 1
    assert api.post("/v1/runs/999999/upscale", json={"width": 32}).status_code == 404
    for body, message in [
        ({"width": 40}, "whole multiple (×2 or more) of the proxy width 16"),
        ({"width": 16}, "whole multiple"),
        ({"width": 36}, "not a multiple of head size 8"),
        ({"width": 512}, "MUPREDICT_MAX_WIDTH"),
        ({"width": 32, "noise": -1}, "greater than or equal to 0"),
        ({"width": 32, "speed": 2}, "Extra inputs are not permitted"),
    ]:
        refused = api.post(f"/v1/runs/{run_id}/upscale", json=body)
        assert refused.status_code == 422 and message in refused.text, (body, refused.text)
    sp = api.post(
        "/v1/architectures", json=spec(tmp_path, name="sp", parametrization={"base_width": 16, "mode": "sp"})
    )
    sp_sweep = api.post(
        f"/v1/architectures/{sp.json()['id']}/sweeps", json={"widths": [16], "seeds": [0]}
    ).json()
    assert Worker(settings, device="cpu", poll_seconds=0.05).run(once=True) == 1
    refused = api.post(f"/v1/runs/{sp_sweep['runs'][0]['id']}/upscale", json={"width": 32})
    assert refused.status_code == 422 and "only under μP" in refused.text
    # The client asks the same (a continuation, and a ladder built by upscaling).
    with Client("http://testserver", transport=httpx.MockTransport(forward(api))) as client:
        upscaled = client.upscale_run(run_id, 32, steps=2, noise=0.0)
        assert (upscaled.role, upscaled.width, upscaled.parent_run_id, upscaled.noise) == (
            "upscaled",
            32,
            run_id,
            0.0,
        )
        ladder = client.create_sweep(arch_id, widths=[16, 32], seeds=[0], warm_start="upscale", noise=0.25)
        assert (ladder.warm_start, ladder.noise) == ("upscale", 0.25)


def test_a_warm_started_ladder_is_built_rung_by_rung_and_fitted_apart(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    arch_id = api.post("/v1/architectures", json=spec(tmp_path)).json()["id"]
    body = {"widths": [16, 32, 64, 128], "seeds": [0, 1], "steps": 16, "warm_start": "upscale", "noise": 0.5}
    created = api.post(f"/v1/architectures/{arch_id}/sweeps", json=body)
    assert created.status_code == 202, created.text
    sweep = created.json()
    assert (sweep["warm_start"], sweep["noise"]) == ("upscale", 0.5)
    runs = {(r["width"], r["seed"]): r for r in sweep["runs"]}
    assert [runs[16, s]["role"] for s in (0, 1)] == ["run", "run"]  # the smallest rung from scratch
    for seed in (0, 1):  # each larger rung widened from the one below, same seed
        for small, large in ((16, 32), (32, 64), (64, 128)):
            assert runs[large, seed]["role"] == "upscaled"
            assert runs[large, seed]["parent_run_id"] == runs[small, seed]["id"]
    assert api.post(f"/v1/architectures/{arch_id}/sweeps", json=body).json()["id"] == sweep["id"]

    assert Worker(settings, device="cpu", poll_seconds=0.05).run(once=True) == 8  # rung after rung
    done = api.get("/v1/runs", params={"sweep_id": sweep["id"]}).json()["items"]
    assert {r["status"] for r in done} == {"succeeded"}
    assert len(list((tmp_path / "artifacts").rglob("*.pt"))) == 6  # the ends of rungs 16 to 64, kept
    warm = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e6})
    assert warm.status_code == 200, warm.text
    assert warm.json()["provenance"]["recipe"]["warm_start"] == "upscale"
    assert sorted(warm.json()["provenance"]["run_ids"]) == sorted(r["id"] for r in done)
    assert any("built by μP upscaling" in w for w in warm.json()["warnings"])

    # A from-scratch ladder of the same widths is another recipe: its fit never takes an upscaled rung.
    scratch = api.post(
        f"/v1/architectures/{arch_id}/sweeps", json={**body, "warm_start": None, "noise": None}
    )
    assert scratch.status_code == 202, scratch.text
    assert Worker(settings, device="cpu", poll_seconds=0.05).run(once=True) == 6  # width 16 is shared
    answered = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e6})
    assert answered.status_code == 200, answered.text
    cold = answered.json()
    assert cold["provenance"]["recipe"]["warm_start"] is None
    roles = {
        r["id"]: r["role"] for r in api.get("/v1/runs", params={"architecture_id": arch_id}).json()["items"]
    }
    assert {roles[i] for i in cold["provenance"]["run_ids"]} == {"run"}
    assert not any("upscaling" in w for w in cold["warnings"])
    # Deleting the architecture removes its runs' kept final states too.
    assert api.delete(f"/v1/architectures/{arch_id}").status_code == 204
    assert not list((tmp_path / "artifacts").rglob("*.pt"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"widths": [16, 24], "warm_start": "upscale"}, "24 cannot be upscaled from 16"),
        ({"widths": [16], "warm_start": "upscale"}, "at least two widths"),
        ({"widths": [16, 32], "noise": 1.0}, "noise goes with warm_start"),
        ({"widths": [16, 32], "warm_start": "grow"}, "Input should be 'upscale'"),
    ],
)
def test_bad_warm_started_sweeps_say_what_to_change(
    api: TestClient, tmp_path: Path, body: dict, message: str
) -> None:
    arch_id = api.post("/v1/architectures", json=spec(tmp_path)).json()["id"]
    refused = api.post(f"/v1/architectures/{arch_id}/sweeps", json=body)
    assert refused.status_code == 422 and message in refused.text, refused.text
