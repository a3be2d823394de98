"""Regression tests for the defects probing found (issue 14): each request here was a 500, an accepted
absurdity or a broken list before; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, insert, update
from sqlalchemy.orm import Session

from app import queue
from app.api import create_app
from app.client import Client
from app.db import make_engine
from app.models import Architecture, RunMetric
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict
from tests.app.live_server import live_server

TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "specs"


@pytest.fixture
def settings(fresh_db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=fresh_db_url, api_token=SecretStr(TOKEN))


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=AUTH) as client:
        yield client


@pytest.fixture
def engine(fresh_db_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_db_url)
    yield engine
    engine.dispose()


def strict_json(text: str) -> Any:
    """The body as JSON, refusing the NaN / Infinity extensions Python's json would accept."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a response body")

    return json.loads(text, parse_constant=refuse)


def _create(api: TestClient, **overrides: Any) -> int:
    response = api.post("/v1/architectures", json=spec_dict(**overrides))
    assert response.status_code in (200, 201), response.text
    return int(response.json()["id"])


# -- 2. a spec whose derived fields break the limits is refused; a stored one never breaks a list -----


def test_a_token_budget_past_the_step_limit_is_422_and_nothing_is_stored(api: TestClient) -> None:
    response = api.post(
        "/v1/architectures",
        json=spec_dict(
            training={"token_budget": 10_000_000_000_000, "batch_tokens": 256}, context_length=128
        ),
    )
    assert response.status_code == 422, response.text
    message = response.json()["detail"][0]["msg"]
    assert "39062500000 steps exceed the limit of 10000000" in message and "token_budget" in message
    listed = api.get("/v1/architectures")
    assert listed.status_code == 200 and listed.json()["items"] == []


def test_a_stored_spec_that_no_longer_validates_is_listed_flagged_and_refused_elsewhere(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    good, bad = _create(api, name="good"), _create(api, name="bad", activation="swiglu")
    for arch_id in (good, bad):
        assert api.post(f"/v1/architectures/{arch_id}/sweeps", json={}).status_code == 202
        finish_runs(engine, arch_id)
    # What older code stored (derived steps past the limit), or a hand edit.
    broken = {**api.get(f"/v1/architectures/{bad}").json()["spec"]}
    broken["training"] = {**broken["training"], "steps": 39_062_500_000}
    with Session(engine) as session:
        session.execute(update(Architecture).where(Architecture.id == bad).values(spec=broken))
        session.commit()

    listed = api.get("/v1/architectures")
    assert listed.status_code == 200, listed.text
    items = {a["id"]: a for a in listed.json()["items"]}
    assert items[good]["valid"] is True and items[good]["error"] is None and items[good]["spec"]
    assert items[bad]["valid"] is False and items[bad]["spec"] is None
    assert "training.steps" in items[bad]["error"] and "POST /v1/architectures" in items[bad]["error"]

    for method, path, body in [
        ("GET", f"/v1/architectures/{bad}", None),
        ("POST", f"/v1/architectures/{bad}/sweeps", {}),
        ("POST", f"/v1/architectures/{bad}/tuning", {}),
        ("GET", f"/v1/architectures/{bad}/coord-check", None),
        ("POST", "/v1/predictions", {"architecture_id": bad, "n_params": 1e9}),
        ("POST", "/v1/compare", {"architecture_ids": [good, bad], "n_params": 1e9}),
    ]:
        response = api.request(method, path, json=body)
        assert response.status_code == 409, (path, response.text)
        assert "no longer validates" in response.json()["detail"], path
    assert api.post("/v1/predictions", json={"architecture_id": good, "n_params": 1e9}).status_code == 200

    for page in ("/", "/compare", f"/compare?ids={good},{bad}", f"/architectures/{bad}"):
        assert api.get(page).status_code == 200, page
    with live_server(create_app(settings)) as url, Client(url, token=TOKEN) as client:
        flagged = {a.id: a for a in client.list_architectures()}
        assert flagged[bad].valid is False and flagged[good].spec is not None


# -- 3. non-finite numbers, booleans and numeric strings are 422s naming the field ---------------------

HOSTILE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "true", '"5"']


def _raw(template: str, value: str) -> str:
    return template.replace("@", value)


BODY_CASES = [
    ("/v1/predictions", '{"architecture_id": 1, "n_params": @}', "n_params"),
    ("/v1/predictions", '{"architecture_id": 1, "n_params": 1e9, "level": @}', "level"),
    ("/v1/predictions", '{"architecture_id": @, "n_params": 1e9}', "architecture_id"),
    ("/v1/compare", '{"architecture_ids": [1, 2], "n_params": @}', "n_params"),
    ("/v1/compare", '{"architecture_ids": [1, 2], "n_params": 1e9, "level": @}', "level"),
    ("/v1/architectures/1/sweeps", '{"widths": [32, @]}', "widths"),
    ("/v1/architectures/1/sweeps", '{"lr": @}', "lr"),
    ("/v1/architectures/1/sweeps", '{"steps": @}', "steps"),
    ("/v1/architectures/1/tuning", '{"grid_factor": @}', "grid_factor"),
    ("/v1/architectures/1/tuning", '{"lr": @}', "lr"),
    *[
        (path, f'{{"name": "x", {field}}}', name)
        for path in ("/v1/architectures", "/v1/architectures/validate")
        for field, name in [
            ('"ffn_ratio": @', "ffn_ratio"),
            ('"n_layers": @', "n_layers"),
            ('"training": {"lr": @}', "lr"),
            ('"training": {"betas": [@, 0.95]}', "betas"),
            ('"parametrization": {"init_std": @}', "init_std"),
            ('"parametrization": {"depth_alpha": @}', "depth_alpha"),
        ]
    ],
]


def test_non_finite_numbers_booleans_and_numeric_strings_are_422_naming_the_field(api: TestClient) -> None:
    _create(api)
    for path, template, field in BODY_CASES:
        for value in HOSTILE_NUMBERS:
            response = api.post(path, content=_raw(template, value), headers=JSON)
            label = f"{path} {_raw(template, value)}"
            assert response.status_code == 422, (label, response.status_code, response.text)
            errors = strict_json(response.text)["detail"]
            assert any(field in e["loc"] for e in errors), (label, errors)


def test_a_validation_error_echoing_unrepresentable_input_still_renders(api: TestClient) -> None:
    # Not JSON at all: the body reaches validation as bytes that are not UTF-8.
    raw = api.post("/v1/architectures", content=b"\xff\xfe\x00", headers={"content-type": "text/plain"})
    assert raw.status_code == 422 and strict_json(raw.text)["detail"]
    # A 20 kB string is cut in the echo, not sent back whole.
    long_name = api.post("/v1/architectures/validate", json={"name": "x" * 20_000})
    assert long_name.status_code == 422 and len(long_name.text) < 2_000


# -- 6. NUL, lone surrogates, non-ASCII digits and non-ASCII tokens: 4xx with a message ----------------


def test_nul_and_lone_surrogates_are_422_on_both_databases(api: TestClient) -> None:
    nul = api.post("/v1/architectures", json=spec_dict("a\u0000b"))
    assert nul.status_code == 422 and "NUL" in nul.json()["detail"][0]["msg"]
    surrogate = api.post("/v1/architectures", content=b'{"name": "a\\ud800b"}', headers=JSON)
    assert surrogate.status_code == 422, surrogate.text
    assert strict_json(surrogate.text)["detail"][0]["loc"] == ["body", "name"]
    source = api.post("/v1/architectures/validate", json=spec_dict(dataset={"source": "/tmp/a\u0000b"}))
    assert source.status_code == 422 and "NUL" in source.json()["detail"][0]["msg"]
    assert api.get("/v1/architectures").json()["items"] == []
    found = api.get("/v1/architectures", params={"name": "\u0000"})
    assert found.status_code == 422 and "NUL" in found.json()["detail"][0]["msg"]


def test_cursors_past_any_id_are_422(api: TestClient) -> None:
    import base64

    cursor = base64.urlsafe_b64encode(b"id:99999999999999999999").decode()
    for path in ("/v1/architectures", "/v1/runs"):
        response = api.get(path, params={"cursor": cursor})
        assert response.status_code == 422 and "next_cursor" in response.json()["detail"][0]["msg"], path


def test_dashboard_ids_are_ascii_digits_only(api: TestClient) -> None:
    for k in range(3):
        _create(api, name=f"arch-{k}", n_layers=k + 1)
    assert api.get("/architectures/3").status_code == 200
    for ident in ("²", "٣", "३", "9" * 5000, "-1", "3.0"):
        response = api.get(f"/architectures/{ident}")
        assert response.status_code == 404, ident
        assert "No architecture with id" in response.text


def test_a_non_ascii_bearer_token_is_401(api: TestClient) -> None:
    for header in ("Bearer é".encode(), "Bearer ☃".encode(), b"Bearer \xff"):
        response = api.post("/v1/architectures", json=spec_dict(), headers={"Authorization": header})
        assert response.status_code == 401, response.text
        assert "MUPREDICT_API_TOKEN" in response.json()["detail"]


# -- 7. a loss curve with NaN points: finite end to end, and the client reads the run ---------------------


def test_nan_points_of_a_loss_curve_never_reach_the_client(
    api: TestClient, engine: Engine, settings: Settings
) -> None:
    arch_id = _create(api)
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [32, 48]})
    with Session(engine) as session:
        first = queue.claim(session, "w", lease_seconds=60)
        assert first is not None
        result = {"status": "diverged", "reason": "training loss became nan at step 30", "steps": 30}
        result["loss_curve"] = [(10, 5.0), (20, 4.0), (30, math.nan)]  # what the trainer's helper emitted
        assert queue.complete(session, first.id, "w", result)
        second = queue.claim(session, "w", lease_seconds=60)
        assert second is not None
        # A row written by older code, straight into the table.
        session.execute(
            insert(RunMetric),
            [
                {"run_id": second.id, "step": 10, "train_loss": 5.0},
                {"run_id": second.id, "step": 20, "train_loss": math.inf},
            ],
        )
        session.commit()
    with live_server(create_app(settings)) as url, Client(url, token=TOKEN) as client:
        assert [(p.step, p.train_loss) for p in client.get_run(first.id).loss_curve] == [(10, 5.0), (20, 4.0)]
        assert [(p.step, p.train_loss) for p in client.get_run(second.id).loss_curve] == [(10, 5.0)]


# -- 8. estimated compute per run and per sweep ----------------------------------------------------------


def test_a_deep_long_context_spec_is_refused_with_the_estimate_and_the_limit(api: TestClient) -> None:
    deep = _create(
        api,
        name="deep",
        n_layers=256,
        context_length=65536,
        training={"batch_tokens": 65536},
        proxy_widths=[64],
    )
    sweep = api.post(f"/v1/architectures/{deep}/sweeps", json={})
    assert sweep.status_code == 422, sweep.text
    message = " ".join(e["msg"] for e in sweep.json()["detail"])
    assert "estimated at 2.55e+17 training FLOPs" in message and "per-run limit of 1e+17" in message
    assert "MUPREDICT_MAX_FLOPS_PER_RUN" in message
    tuning = api.post(f"/v1/architectures/{deep}/tuning", json={"widths": []})
    assert tuning.status_code == 422 and "MUPREDICT_MAX_FLOPS_PER_RUN" in tuning.text
    assert api.get("/v1/runs").json()["items"] == []


def test_the_per_sweep_compute_limit(fresh_db_url: str) -> None:
    settings = Settings(_env_file=None, database_url=fresh_db_url, max_flops_per_sweep=1e12)
    with TestClient(create_app(settings)) as api:
        arch_id = _create(api)
        small = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"widths": [32, 48]})
        assert small.status_code == 202, small.text  # 5.2e11 FLOPs
        full = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]})
        assert full.status_code == 422
        assert "per sweep (MUPREDICT_MAX_FLOPS_PER_SWEEP)" in full.json()["detail"][0]["msg"]


def test_the_default_limits_accept_the_shipped_examples(api: TestClient) -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        response = api.post("/v1/architectures", json=json.loads(path.read_text()))
        assert response.status_code == 201, (path.name, response.text)
        arch_id = response.json()["id"]
        for route, body in (("sweeps", {"seeds": [0, 1]}), ("tuning", {"widths": []}), ("tuning", {})):
            queued = api.post(f"/v1/architectures/{arch_id}/{route}", json=body)
            assert queued.status_code == 202, (path.name, route, body, queued.text)


# -- 9. the token before the body, and a cap on the body's size --------------------------------------------


def test_the_token_is_checked_before_the_body_is_parsed(settings: Settings) -> None:
    with TestClient(create_app(settings)) as anonymous:
        for path in ("/v1/architectures", "/v1/architectures/1/sweeps", "/v1/architectures/1/tuning"):
            response = anonymous.post(path, content=b"{not json", headers=JSON)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
        # Routes that need no token still parse (and refuse) the body.
        assert anonymous.post("/v1/predictions", content=b"{not json", headers=JSON).status_code == 422


def test_request_bodies_past_the_cap_are_413_with_the_setting(fresh_db_url: str) -> None:
    settings = Settings(
        _env_file=None, database_url=fresh_db_url, api_token=SecretStr(TOKEN), max_body_bytes=4096
    )
    big = json.dumps(spec_dict("x" * 5000)).encode()
    with TestClient(create_app(settings), headers=AUTH) as api:
        for path in ("/v1/architectures", "/v1/predictions", "/v1/architectures/validate"):
            response = api.post(path, content=big, headers=JSON)
            assert response.status_code == 413, (path, response.text)
            assert "4096 bytes (MUPREDICT_MAX_BODY_BYTES)" in response.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield from (big[i : i + 1000] for i in range(0, len(big), 1000))

        chunked = api.post("/v1/architectures/validate", content=chunks(), headers=JSON)
        assert chunked.status_code == 413 and "MUPREDICT_MAX_BODY_BYTES" in chunked.json()["detail"]
        assert api.post("/v1/architectures", json=spec_dict()).status_code == 201
        # Without the token, a write route answers 401 whatever the body's size.
        anonymous = api.post("/v1/architectures", content=big, headers={**JSON, "Authorization": ""})
        assert anonymous.status_code == 401
