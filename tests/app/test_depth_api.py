"""Depth in the ladder (issue 17 points 1, 2 and 6): sweeps over depth, a (width, depth) grid or one
aspect ratio; N counts every layer; the fit over mixed shapes says whether shape matters and, when it
does, predictions asked by shape use its term; predictions at any (width, depth) or at N for an aspect
ratio; bad requests get 422s that name the fix. Results come from the real queue with losses that
follow a known law (tests/app/api_helpers.py); a real worker trains a depth ladder in
tests/app/test_depth_worker.py. SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import queue
from app.api import create_app
from app.client import Client
from app.settings import Settings
from tests.app.api_helpers import finish_runs, forward, law_loss, spec_dict
from trainer import ArchitectureSpec, count_params

WIDTHS, DEPTHS = [32, 64, 128], [1, 2, 4]
GAMMA = 0.03  # Δ log loss per doubling of width / depth in the shape-sensitive law below


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, database_url=fresh_db_url, max_width=1024)
    with TestClient(create_app(settings)) as client:
        yield client


def n_of(spec: dict, width: int, depth: int) -> int:
    return count_params(ArchitectureSpec.model_validate(spec).at_depth(depth), width)[1]


def _ladder(api: TestClient, spec: dict, sweep: dict, gamma: float = 0.0) -> tuple[int, int]:
    """The architecture and its sweep, every run finished with a law-following loss (× the shape term)."""
    arch_id = int(api.post("/v1/architectures", json=spec).json()["id"])
    created = api.post(f"/v1/architectures/{arch_id}/sweeps", json=sweep)
    assert created.status_code == 202, created.text
    rng = np.random.default_rng(7)
    z_mean = float(np.mean([math.log2(w / d) for w in WIDTHS for d in DEPTHS]))

    def loss(claimed: queue.ClaimedRun, n: int) -> float:
        shape = gamma * (math.log2(claimed.width / claimed.depth) - z_mean)
        return law_loss(n) * math.exp(shape + 0.002 * rng.standard_normal())

    finish_runs(api.app.state.engine, arch_id, loss_of=loss)  # type: ignore[attr-defined]
    return arch_id, int(created.json()["id"])


def _predict(api: TestClient, **body: object) -> dict:
    response = api.post("/v1/predictions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_width_depth_grid_trains_every_shape_and_finds_that_shape_matters(api: TestClient) -> None:
    spec = spec_dict("grid", proxy_widths=WIDTHS, proxy_depths=DEPTHS)
    arch_id, sweep_id = _ladder(api, spec, {"seeds": [0, 1, 2]}, gamma=GAMMA)
    body = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert body["depths"] == DEPTHS and body["aspect_ratio"] is None
    assert sorted({(r["width"], r["depth"]) for r in body["runs"]}) == [
        (w, d) for w in WIDTHS for d in DEPTHS
    ]
    assert body["counts"]["succeeded_widths"] == 9  # sizes: every (width, depth)

    fit = api.get(f"/v1/architectures/{arch_id}/fit").json()
    assert {(p["width"], p["depth"]) for p in fit["points"]} == {(w, d) for w in WIDTHS for d in DEPTHS}
    for p in fit["points"]:  # N counts every layer of the shape
        assert p["n_params"] == n_of(spec, p["width"], p["depth"])
    shape = fit["shape"]
    assert shape["testable"] and shape["needed"], shape["reason"]
    assert shape["gamma_lower"] <= GAMMA <= shape["gamma_upper"]
    assert set(shape["residuals_by_depth"]) == {"1", "2", "4"}
    assert "depths             = 1, 2, 4" in fit["report"]

    # Asked by shape, the term is applied: at equal N the wider, shallower shape is predicted worse.
    wide = _predict(api, architecture_id=arch_id, width=512, depth=2, interval="expected")
    assert wide["n_params"] == n_of(spec, 512, 2) and wide["depth"] == 2
    assert wide["shape_corrected"] and wide["aspect_ratio"] == 256
    assert any("shape-corrected" in w for w in wide["warnings"])
    n = wide["n_params"]
    deep = _predict(api, architecture_id=arch_id, n_params=n, aspect_ratio=16, interval="expected")
    assert deep["shape_corrected"] and deep["depth"] is not None
    assert wide["predicted_loss"] > deep["predicted_loss"]
    z_mean = float(np.mean([math.log2(w / d) for w in WIDTHS for d in DEPTHS]))
    for answer, aspect in ((wide, 256), (deep, 16)):
        truth = law_loss(n) * math.exp(GAMMA * (math.log2(aspect) - z_mean))
        assert answer["lower"] <= truth <= answer["upper"], (aspect, answer)
    # Asked by N alone the law is served as fitted, with a warning that says how to ask by shape.
    plain = _predict(api, architecture_id=arch_id, n_params=n)
    assert not plain["shape_corrected"]
    assert any("asked by N alone" in w for w in plain["warnings"])


def test_without_a_shape_effect_the_grid_serves_l_of_n(api: TestClient) -> None:
    spec = spec_dict("flat", proxy_widths=WIDTHS, proxy_depths=DEPTHS)
    arch_id, _ = _ladder(api, spec, {"seeds": [0, 1, 2]}, gamma=0.0)
    shape = api.get(f"/v1/architectures/{arch_id}/fit").json()["shape"]
    assert shape["testable"] and not shape["needed"], shape["reason"]
    answer = _predict(api, architecture_id=arch_id, width=256, depth=8)
    assert not answer["shape_corrected"] and answer["n_params"] == n_of(spec, 256, 8)
    assert answer["extrapolation"]["target_depth"] == 8 and answer["extrapolation"]["depth"] == 2.0


def test_a_ladder_over_depth_at_one_width_predicts_deeper_models(api: TestClient) -> None:
    spec = spec_dict("deep", proxy_widths=[64])
    depths = [1, 2, 3, 4, 6]
    arch_id, _ = _ladder(api, spec, {"depths": depths, "seeds": [0, 1]})
    fit = api.get(f"/v1/architectures/{arch_id}/fit").json()
    assert sorted({p["depth"] for p in fit["points"]}) == depths and {p["width"] for p in fit["points"]} == {
        64
    }
    assert not fit["shape"]["testable"] and "(width, depth) grid" in fit["shape"]["reason"]
    answer = _predict(api, architecture_id=arch_id, width=64, depth=24, interval="expected")
    assert answer["n_params"] == n_of(spec, 64, 24)
    assert answer["lower"] <= law_loss(answer["n_params"]) <= answer["upper"]
    assert answer["extrapolation"]["depth"] == 4.0
    assert any("extrapolated in depth" in w for w in answer["warnings"])
    assert answer["provenance"]["recipe"]["depths"] == depths


def test_an_aspect_ratio_ladder_trains_one_depth_per_width(api: TestClient) -> None:
    spec = spec_dict("ratio", proxy_widths=[32, 64, 96, 128])
    arch_id = int(api.post("/v1/architectures", json=spec).json()["id"])
    sweep = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"aspect_ratio": 32})
    assert sweep.status_code == 202, sweep.text
    assert sorted((r["width"], r["depth"]) for r in sweep.json()["runs"]) == [
        (32, 1),
        (64, 2),
        (96, 3),
        (128, 4),
    ]
    finish_runs(api.app.state.engine, arch_id)  # type: ignore[attr-defined]
    recipe = _predict(api, architecture_id=arch_id, n_params=1e7, aspect_ratio=32)["provenance"]["recipe"]
    assert recipe["aspect_ratio"] == 32 and recipe["depths"] == [1, 2, 3, 4]
    # A width sweep of the same architecture at the spec's depth is a recipe of its own: its runs at
    # depth 2 are not mixed into the ratio ladder, nor the ratio ladder's into it.
    again = api.post(f"/v1/architectures/{arch_id}/sweeps", json={})
    assert {r["depth"] for r in again.json()["runs"]} == {2}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"depths": [1, 2], "aspect_ratio": 16}, "body", "give depths or aspect_ratio, not both"),
        ({"depths": [2, 2]}, "body", "repeats a depth"),
        ({"depths": [0]}, "depths", "greater than or equal to 1"),
        ({"depths": [300]}, "depths", "less than or equal to 256"),
        ({"aspect_ratio": 48}, "aspect_ratio", "give widths that are multiples of 48"),
        ({"aspect_ratio": 0.01}, "aspect_ratio", "is not a whole depth in [1, 256]"),
        ({"depths": [1, 2], "warm_start": "upscale"}, "body", "trains whole runs from scratch"),
        ({"depths": [1, 2], "seeds": list(range(16)), "widths": [32, 48, 64, 96, 128]}, "seeds", "fewer"),
    ],
)
def test_bad_depth_sweeps_say_what_to_change(api: TestClient, body: dict, field: str, message: str) -> None:
    settings = api.app.state.settings  # type: ignore[attr-defined]
    arch_id = api.post("/v1/architectures", json=spec_dict("bad")).json()["id"]
    refused = api.post(f"/v1/architectures/{arch_id}/sweeps", json=body)
    assert refused.status_code == 422 and message in refused.text, refused.text
    if field != "body":
        assert any(field in str(e["loc"]) for e in refused.json()["detail"]), refused.text
    if "seeds" in body:  # the run count names the depths too
        assert f"{settings.max_runs_per_sweep} per sweep" in refused.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"n_params": 1e7, "depth": 4}, "`depth` goes with `width`"),
        ({"width": 64, "aspect_ratio": 16}, "`aspect_ratio` goes with `n_params`"),
        ({"width": 64, "depth": 0}, "greater than or equal to 1"),
        ({"width": 64, "depth": 257}, "less than or equal to 256"),
    ],
)
def test_bad_shape_predictions_say_what_to_change(api: TestClient, body: dict, message: str) -> None:
    arch_id = api.post("/v1/architectures", json=spec_dict("asks")).json()["id"]
    refused = api.post("/v1/predictions", json={"architecture_id": arch_id, **body})
    assert refused.status_code == 422 and message in refused.text, refused.text


def test_proxy_depths_are_validated_and_keep_old_hashes(api: TestClient) -> None:
    refused = api.post("/v1/architectures", json=spec_dict("rep", proxy_depths=[2, 2]))
    assert refused.status_code == 422 and "repeats a depth" in refused.text
    plain = ArchitectureSpec.model_validate(spec_dict("plain"))
    assert "proxy_depths" not in plain.canonical_json() and "block" not in plain.canonical_json()
    assert (
        plain.spec_hash() != ArchitectureSpec.model_validate(spec_dict("p", proxy_depths=[1, 2])).spec_hash()
    )


def test_the_client_asks_for_depth_ladders_and_shapes(api: TestClient) -> None:
    spec = spec_dict("client", proxy_widths=[32, 64])
    with Client("http://testserver", transport=httpx.MockTransport(forward(api))) as client:
        arch = client.create_architecture(spec)
        ratio = client.create_sweep(arch.id, aspect_ratio=32)
        assert ratio.aspect_ratio == 32 and {(r.width, r.depth) for r in ratio.runs} == {(32, 1), (64, 2)}
        sweep = client.create_sweep(arch.id, depths=[1, 2, 4], seeds=[0, 1])
        assert sweep.depths == [1, 2, 4] and len(sweep.runs) == 12  # the ratio ladder's 2 runs shared
        finish_runs(api.app.state.engine, arch.id)  # type: ignore[attr-defined]
        answer = client.predict(architecture_id=arch.id, width=256, depth=8)
        assert answer.depth == 8 and answer.n_params == n_of(spec, 256, 8)
