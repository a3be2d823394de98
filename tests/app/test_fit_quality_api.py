"""A fit without a scaling trend is shown, never served: 409 on predictions, left out of comparisons
with its reasons (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict

# Losses that wander with width instead of falling (the shipped depth-μP example's ladder did this).
FLAT = {8: 1.921, 16: 1.881, 24: 1.946, 32: 1.873, 48: 1.93, 64: 1.90, 96: 1.92, 128: 1.89}


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, database_url=fresh_db_url, max_width=1024)
    with TestClient(create_app(settings)) as client:
        yield client


def _ladder(api: TestClient, name: str, flat: bool = False, **overrides: object) -> int:
    arch_id = int(api.post("/v1/architectures", json=spec_dict(name=name, **overrides)).json()["id"])
    assert api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]}).status_code == 202
    if flat:
        finish_runs(api.app.state.engine, arch_id, loss_of=lambda run, _n: FLAT[run.width])  # type: ignore[attr-defined]
    else:
        finish_runs(api.app.state.engine, arch_id, noise=0.003)  # type: ignore[attr-defined]
    return arch_id


def test_no_trend_means_no_prediction_but_the_fit_is_shown(api: TestClient) -> None:
    arch_id = _ladder(api, "flat", flat=True)
    refused = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e9})
    assert refused.status_code == 409
    body = refused.json()
    assert body["architecture_id"] == arch_id and body["quality"]["ok"] is False
    assert any("does not fall with N" in r for r in body["reasons"])
    assert (
        "train the proxies longer" in body["detail"]
        and f"/v1/architectures/{arch_id}/tuning" in body["detail"]
    )
    fit = api.get(f"/v1/architectures/{arch_id}/fit")
    assert fit.status_code == 200
    assert fit.json()["quality"]["ok"] is False and fit.json()["quality"]["reasons"] == body["reasons"]
    assert fit.json()["quality"]["enforced"] is True


def test_compare_ranks_only_designs_with_a_trend_and_says_why_not_the_others(api: TestClient) -> None:
    good = _ladder(api, "good")
    better = _ladder(api, "better", ffn_ratio=3.0)
    flat = _ladder(api, "flat", flat=True, ffn_ratio=2.0)
    assert api.post("/v1/predictions", json={"architecture_id": good, "n_params": 1e9}).status_code == 200
    ranked = api.post("/v1/compare", json={"architecture_ids": [good, flat, better], "n_params": 1e9})
    assert ranked.status_code == 200, ranked.text
    body = ranked.json()
    assert sorted(c["architecture_id"] for c in body["candidates"]) == sorted([good, better])
    assert sum(c["probability_best"] for c in body["candidates"]) == pytest.approx(1.0, abs=1e-9)
    assert [e["architecture_id"] for e in body["excluded"]] == [flat]
    assert any("does not fall with N" in r for r in body["excluded"][0]["reasons"])
    # With one usable candidate left there is nothing to rank: a 409 that names the one that blocked it.
    blocked = api.post("/v1/compare", json={"architecture_ids": [good, flat], "n_params": 1e9})
    assert blocked.status_code == 409
    assert f"flat (id {flat})" in blocked.json()["detail"] and "does not fall" in blocked.json()["detail"]


def test_with_the_gate_off_the_fit_is_served_and_its_verdict_still_reported(fresh_db_url: str) -> None:
    settings = Settings(_env_file=None, database_url=fresh_db_url, max_width=1024, fit_gate=False)
    with TestClient(create_app(settings)) as api:
        flat = _ladder(api, "flat", flat=True)
        good = _ladder(api, "good", ffn_ratio=3.0)
        assert api.post("/v1/predictions", json={"architecture_id": flat, "n_params": 1e9}).status_code == 200
        quality = api.get(f"/v1/architectures/{flat}/fit").json()["quality"]
        assert quality["ok"] is False and quality["enforced"] is False and quality["reasons"]
        ranked = api.post("/v1/compare", json={"architecture_ids": [good, flat], "n_params": 1e9}).json()
        assert len(ranked["candidates"]) == 2 and ranked["excluded"] == []
