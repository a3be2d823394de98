"""Every route through the ASGI app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from app.api import create_app
from app.models import Fit
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=fresh_db_url, max_width=1024, max_runs_per_sweep=20)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def _create(api: TestClient, **overrides: object) -> dict:
    response = api.post("/v1/architectures", json=spec_dict(**overrides))
    assert response.status_code in (200, 201), response.text
    return response.json()


def _sweep(api: TestClient, arch_id: int, **body: object) -> dict:
    response = api.post(f"/v1/architectures/{arch_id}/sweeps", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def test_health_and_readiness(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
    assert ready.json()["schema_revision"] == ready.json()["schema_head"]
    assert api.get("/openapi.json").json()["info"]["title"] == "mupredict"


def test_create_architecture_is_idempotent(api: TestClient) -> None:
    first = api.post("/v1/architectures", json=spec_dict("gelu"))
    assert first.status_code == 201
    body = first.json()
    assert body["spec"]["activation"] == "gelu" and len(body["spec_hash"]) == 64
    again = api.post("/v1/architectures", json=spec_dict("gelu"))
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    # Key order and the display name do not make a different architecture.
    renamed = api.post("/v1/architectures", json=dict(reversed(list(spec_dict("other name").items()))))
    assert renamed.status_code == 200 and renamed.json()["id"] == body["id"]
    different = api.post("/v1/architectures", json=spec_dict("swiglu", activation="swiglu"))
    assert different.status_code == 201 and different.json()["id"] != body["id"]


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"proxy_widths": [32, 40]}, "body", "not a multiple of head size 16"),
        ({"activation": "tanh"}, "activation", "gelu"),
        ({"n_layers": 0}, "n_layers", "greater than or equal to 1"),
        ({"unknown_field": 1}, "unknown_field", "Extra inputs are not permitted"),
    ],
)
def test_bad_spec_is_422_with_field_detail(api: TestClient, override: dict, field: str, message: str) -> None:
    response = api.post("/v1/architectures", json=spec_dict(**override))
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(field in [str(p) for p in e["loc"]] and message in e["msg"] for e in errors), errors


def test_list_pages_with_a_cursor_and_filters(api: TestClient) -> None:
    ids = [_create(api, name=f"arch-{k}", n_layers=k + 1)["id"] for k in range(3)]
    page = api.get("/v1/architectures", params={"limit": 2}).json()
    assert [a["id"] for a in page["items"]] == ids[:2] and page["next_cursor"]
    rest = api.get("/v1/architectures", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [a["id"] for a in rest["items"]] == ids[2:] and rest["next_cursor"] is None
    named = api.get("/v1/architectures", params={"name": "arch-1"}).json()
    assert [a["id"] for a in named["items"]] == [ids[1]]
    bad = api.get("/v1/architectures", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and "next_cursor" in bad.json()["detail"][0]["msg"]


def test_unknown_ids_are_404_and_absurd_ids_422(api: TestClient) -> None:
    for path in ("/v1/architectures/999", "/v1/sweeps/999", "/v1/runs/999", "/v1/architectures/999/fit"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert "999" in response.json()["detail"]
    assert api.get("/v1/runs/99999999999999999999").status_code == 422
    assert api.post("/v1/architectures/999/sweeps", json={}).status_code == 404


def test_sweep_enqueues_idempotently_and_reports_progress(api: TestClient) -> None:
    arch = _create(api)
    sweep = _sweep(api, arch["id"], seeds=[0, 1], steps=7)
    assert sweep["widths"] == [32, 48, 64, 96, 128] and sweep["steps"] == 7
    assert len(sweep["runs"]) == 10 and sweep["counts"]["queued"] == 10 and not sweep["done"]
    again = _sweep(api, arch["id"], seeds=[1, 0], steps=7)
    assert again["id"] == sweep["id"]
    assert len(api.get("/v1/runs", params={"architecture_id": arch["id"]}).json()["items"]) == 10
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["counts"]["queued"] == 10
    by_width = api.get("/v1/runs", params={"architecture_id": arch["id"], "width": 64}).json()["items"]
    assert {r["seed"] for r in by_width} == {0, 1}
    queued = api.get("/v1/runs", params={"status": "queued", "limit": 3}).json()
    assert len(queued["items"]) == 3 and queued["next_cursor"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"widths": [2048]}, "exceeds the largest proxy width 1024"),
        ({"widths": [40]}, "not a multiple of head size 16"),
        ({"widths": [16, 32, 48, 64, 80], "seeds": [0, 1, 2, 3, 4]}, "MAX_RUNS_PER_SWEEP"),
        ({"steps": 5_000_000}, "MAX_TOKENS_PER_RUN"),
        ({"widths": [-32]}, "positive"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_sweep_limits_are_422_naming_the_fix(
    api: TestClient, settings: Settings, body: dict, message: str
) -> None:
    settings.max_tokens_per_run = 1_000_000
    arch = _create(api)
    response = api.post(f"/v1/architectures/{arch['id']}/sweeps", json=body)
    assert response.status_code == 422, response.text
    assert any(message in e["msg"] for e in response.json()["detail"]), response.json()


def test_prediction_needs_enough_runs_then_predicts(api: TestClient, settings: Settings) -> None:
    arch = _create(api)
    sweep = _sweep(api, arch["id"])
    early = api.post("/v1/predictions", json={"architecture_id": arch["id"], "n_params": 1e7})
    assert early.status_code == 409
    assert early.json()["runs"]["queued"] == 5 and early.json()["widths_needed"] == 4
    assert "0 proxy size(s) finished, 4 needed" in early.json()["detail"]

    engine = api.app.state.engine  # type: ignore[attr-defined]
    run_ids = finish_runs(engine, arch["id"])
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["done"]

    response = api.post(
        "/v1/predictions", json={"architecture_id": arch["id"], "n_params": 1e7, "level": 0.8}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    truth = 1.8 + 60.0 * 1e7**-0.3
    assert body["lower"] < body["predicted_loss"] < body["upper"]
    assert abs(body["predicted_loss"] - truth) / truth < 0.02
    assert body["law"] == "mu_scaling" and set(body["parameters"]) >= {"E", "A", "alpha"}
    assert body["points_used"] == 5 and body["widths_used"] == [32, 48, 64, 96, 128]
    assert body["extrapolation_factor"] > 10 and body["warnings"]
    assert sorted(body["provenance"]["run_ids"]) == sorted(run_ids)
    assert body["provenance"]["corpus_fingerprints"] == ["c" * 64]

    by_width = api.post("/v1/predictions", json={"architecture_id": arch["id"], "width": 512}).json()
    assert by_width["width"] == 512 and by_width["n_params"] > 1e6
    inline = api.post("/v1/predictions", json={"spec": spec_dict("renamed"), "n_params": 1e7, "level": 0.8})
    assert inline.status_code == 200 and inline.json()["predicted_loss"] == body["predicted_loss"]
    unknown = api.post("/v1/predictions", json={"spec": spec_dict(n_layers=7), "n_params": 1e7})
    assert unknown.status_code == 404 and "POST it to /v1/architectures" in unknown.json()["detail"]
    bad_width = api.post("/v1/predictions", json={"architecture_id": arch["id"], "width": 100})
    assert bad_width.status_code == 422
    both = api.post("/v1/predictions", json={"architecture_id": arch["id"], "n_params": 1e7, "width": 64})
    assert both.status_code == 422 and "exactly one of `n_params` and `width`" in both.text


def test_fit_is_cached_and_invalidated_by_a_new_run(api: TestClient) -> None:
    arch = _create(api)
    _sweep(api, arch["id"], widths=[32, 48, 64, 96])
    engine = api.app.state.engine  # type: ignore[attr-defined]
    finish_runs(engine, arch["id"])

    def fits() -> int:
        with Session(engine) as session:
            return int(session.scalar(select(func.count()).select_from(Fit)) or 0)

    first = api.post("/v1/predictions", json={"architecture_id": arch["id"], "n_params": 1e6}).json()
    for _ in range(3):
        assert (
            api.post("/v1/predictions", json={"architecture_id": arch["id"], "n_params": 1e6}).json() == first
        )
    assert fits() == 1, "predictions must read the cached fit, not refit"

    _sweep(api, arch["id"], widths=[128])
    finish_runs(engine, arch["id"], seed=1)
    second = api.post("/v1/predictions", json={"architecture_id": arch["id"], "n_params": 1e6}).json()
    assert fits() == 2 and second["points_used"] == 5
    assert second["provenance"]["fit_id"] != first["provenance"]["fit_id"]

    fit = api.get(f"/v1/architectures/{arch['id']}/fit", params={"curve_to": 1e8, "level": 0.9}).json()
    assert fit["fit_id"] == second["provenance"]["fit_id"] and fit["n_points"] == 5
    assert "alpha" in fit["report"] and len(fit["points"]) == 5
    assert all(abs(p["residual"]) < 0.05 for p in fit["points"])
    assert fit["curve"][-1]["n_params"] == pytest.approx(1e8)
    assert all(c["lower"] <= c["mean"] <= c["upper"] for c in fit["curve"])


def test_a_burst_of_cold_predictions_shares_one_fit(api: TestClient) -> None:
    """More concurrent misses than the pool has connections: one fit, every request answered.

    Right after a run finishes every prediction misses at once. The requests that wait for the one
    computing the fit must not hold pooled connections meanwhile, or it cannot get one to store the fit.
    """
    arch = _create(api)
    _sweep(api, arch["id"])
    engine = api.app.state.engine  # type: ignore[attr-defined]
    finish_runs(engine, arch["id"])
    concurrent = 64  # more than the thread pool's 40 workers and the connection pool's 5 + 10

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            body = {"architecture_id": arch["id"], "n_params": 1e8}
            return await asyncio.gather(
                *(client.post("/v1/predictions", json=body) for _ in range(concurrent))
            )

    started = time.monotonic()
    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * concurrent, responses[0].text
    assert len({r.json()["provenance"]["fit_id"] for r in responses}) == 1
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Fit)) == 1
    # A pool starved by waiters shows up as the pool's 30 s checkout timeout, not as an error.
    assert time.monotonic() - started < 20


def test_compare_ranks_candidates_with_probability_best(api: TestClient) -> None:
    engine = api.app.state.engine  # type: ignore[attr-defined]
    worse = _create(api, name="worse")
    better = _create(api, name="better", activation="swiglu")
    for arch, e in ((worse, 1.9), (better, 1.7)):
        _sweep(api, arch["id"])
        finish_runs(engine, arch["id"], e=e)
    response = api.post(
        "/v1/compare", json={"architecture_ids": [worse["id"], better["id"]], "n_params": 1e8}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["best_architecture_id"] == better["id"]
    ranked = body["candidates"]
    assert [c["rank"] for c in ranked] == [1, 2] and ranked[0]["name"] == "better"
    assert sum(c["probability_best"] for c in ranked) == pytest.approx(1.0)
    assert ranked[0]["probability_best"] > 0.9
    same = api.post("/v1/compare", json={"architecture_ids": [worse["id"], worse["id"]], "n_params": 1e8})
    assert same.status_code == 422


def test_compare_warns_when_context_or_token_budget_differ(api: TestClient) -> None:
    engine = api.app.state.engine  # type: ignore[attr-defined]
    base = _create(api, name="ctx128")
    short = _create(api, name="ctx64", context_length=64)
    for arch in (base, short):
        _sweep(api, arch["id"])
        finish_runs(engine, arch["id"])
    body = api.post("/v1/compare", json={"architecture_ids": [base["id"], short["id"]], "n_params": 1e8})
    assert body.status_code == 200, body.text
    [context] = body.json()["warnings"]
    assert "context lengths" in context and "ctx128 (id 1): 128" in context and "ctx64 (id 2): 64" in context
    # A longer ladder for the first: its fit now pools 2× the tokens per run of the second's.
    _sweep(api, base["id"], steps=2 * base["spec"]["training"]["steps"])
    finish_runs(engine, base["id"])
    warnings = api.post(
        "/v1/compare", json={"architecture_ids": [base["id"], short["id"]], "n_params": 1e8}
    ).json()["warnings"]
    assert len(warnings) == 2 and "token budgets per proxy run" in warnings[1]
    alike = _create(api, name="alike", activation="swiglu")
    _sweep(api, alike["id"], steps=2 * base["spec"]["training"]["steps"])
    finish_runs(engine, alike["id"])
    same = api.post("/v1/compare", json={"architecture_ids": [base["id"], alike["id"]], "n_params": 1e8})
    assert same.json()["warnings"] == []


def test_a_blocked_comparison_names_the_architecture(api: TestClient) -> None:
    engine = api.app.state.engine  # type: ignore[attr-defined]
    ready = _create(api, name="ready")
    waiting = _create(api, name="waiting", activation="swiglu")
    _sweep(api, ready["id"])
    finish_runs(engine, ready["id"])
    response = api.post(
        "/v1/compare", json={"architecture_ids": [ready["id"], waiting["id"]], "n_params": 1e8}
    )
    assert response.status_code == 409
    assert response.json()["detail"].startswith(f"architecture {waiting['id']}: 0 proxy size(s) finished")
    assert f"POST /v1/architectures/{waiting['id']}/sweeps" in response.json()["detail"]


def test_write_endpoints_need_the_token_when_configured(settings: Settings) -> None:
    settings.api_token = SecretStr("s3cret")
    with TestClient(create_app(settings)) as api:
        denied = api.post("/v1/architectures", json=spec_dict())
        assert denied.status_code == 401 and "MUPREDICT_API_TOKEN" in denied.json()["detail"]
        wrong = api.post("/v1/architectures", json=spec_dict(), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = api.post("/v1/architectures", json=spec_dict(), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 201
        assert api.get("/v1/architectures").status_code == 200  # reads stay open
        sweep = api.post(f"/v1/architectures/{ok.json()['id']}/sweeps", json={})
        assert sweep.status_code == 401


def test_validate_reports_sizes_without_storing(api: TestClient) -> None:
    check = api.post("/v1/architectures/validate", json=spec_dict()).json()
    assert check["architecture_id"] is None
    sizes = [p["n_params_non_embedding"] for p in check["proxies"]]
    assert sizes == sorted(sizes) and len(sizes) == 5
    assert api.get("/v1/architectures").json()["items"] == []
    arch = _create(api)
    assert api.post("/v1/architectures/validate", json=spec_dict()).json()["architecture_id"] == arch["id"]


def test_the_architecture_list_costs_the_same_queries_for_any_page_size(api: TestClient) -> None:
    """Issue 15 point 5: no query per listed architecture (run counts and the latest tuning are read for
    the whole page), and the counts and tunings are still each architecture's own."""
    engine = api.app.state.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    def listed() -> tuple[int, list[dict]]:
        statements.clear()
        event.listen(Engine, "before_cursor_execute", count)
        try:
            items = api.get("/v1/architectures", params={"limit": 200}).json()["items"]
        finally:
            event.remove(Engine, "before_cursor_execute", count)
        return len(statements), items

    first = _create(api, name="a0")
    _sweep(api, first["id"])
    finish_runs(engine, first["id"])
    tuned = api.post(f"/v1/architectures/{first['id']}/tuning", json={"widths": []})
    assert tuned.status_code == 202, tuned.text
    few, items = listed()
    for i in range(1, 9):
        _create(api, name=f"a{i}", ffn_ratio=1.0 + i / 8)
    many, more = listed()
    assert len(more) == 9 and many == few, (few, many)
    assert more[0]["runs"]["succeeded"] == 5 and more[0]["runs"]["succeeded_widths"] == 5
    own = api.get(f"/v1/architectures/{first['id']}/tuning").json()  # the tuning route's own reading
    assert more[0]["tuning"]["id"] == own["id"] and more[0]["tuning"]["status"] == own["status"]
    assert more[1]["tuning"] is None
    assert all(item["runs"]["queued"] == 0 and item["runs"]["succeeded"] == 0 for item in more[1:])
    assert more[0] == {**items[0]}
