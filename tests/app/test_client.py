"""The notebook client against the real app over real HTTP (uvicorn on loopback), SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from app.api import create_app
from app.client import APIError, Client
from app.db import make_engine
from app.schemas import ArchitecturePublic, ComparePublic, PredictionPublic, SweepPublic
from app.settings import Settings
from app.tuning_schemas import CoordCheckPublic, TuningPublic
from tests.app.api_helpers import finish_runs, lr_basin, spec_dict
from tests.app.live_server import live_server

TOKEN = "client-test-token"


@pytest.fixture
def served(fresh_db_url: str) -> Iterator[tuple[str, Engine]]:
    settings = Settings(_env_file=None, database_url=fresh_db_url, api_token=SecretStr(TOKEN), max_width=1024)
    engine = make_engine(fresh_db_url)
    with live_server(create_app(settings)) as url:
        yield url, engine
    engine.dispose()


def test_every_endpoint_from_the_client(served: tuple[str, Engine]) -> None:
    url, engine = served
    with Client(url, token=TOKEN) as client:
        assert client.health() == {"status": "ok"}
        assert client.ready()["database"] is True

        gelu = client.create_architecture(spec_dict("gelu"))
        again = client.create_architecture(spec_dict("gelu-renamed"))
        assert isinstance(gelu, ArchitecturePublic) and again.id == gelu.id
        swiglu = client.create_architecture(spec_dict("swiglu", activation="swiglu"))
        assert client.get_architecture(swiglu.id).spec.activation == "swiglu"
        listed = client.list_architectures(page_size=1)  # follows the cursor across pages
        assert [a.id for a in listed] == [gelu.id, swiglu.id]
        frame = listed.to_pandas()
        assert list(frame["name"]) == ["gelu", "swiglu"]

        with pytest.raises(APIError) as too_early:
            client.predict(architecture_id=gelu.id, n_params=1e9)
        assert too_early.value.status_code == 409 and "needed" in str(too_early.value.detail)

        sweeps = [client.create_sweep(a.id, seeds=[0, 1]) for a in (gelu, swiglu)]
        assert all(isinstance(s, SweepPublic) and len(s.runs) == 10 for s in sweeps)
        assert client.create_sweep(gelu.id, seeds=[0, 1]).id == sweeps[0].id  # idempotent
        finish_runs(engine, gelu.id, a=60.0)
        finish_runs(engine, swiglu.id, a=50.0)
        finished = client.wait_for(sweeps[0], poll_seconds=0.05, timeout=10, progress=False)
        assert finished.done and finished.counts.succeeded == 10

        runs = client.list_runs(architecture_id=gelu.id)
        assert len(runs) == 10 and set(runs.to_pandas()["status"]) == {"succeeded"}
        run = client.get_run(runs[0].id)
        assert run.val_loss is not None and len(run.loss_curve) >= 2

        fit = client.get_fit(gelu.id)
        assert fit.law == "mu_scaling" and fit.n_points == 10
        prediction = client.predict(architecture_id=gelu.id, n_params=1e8, level=0.8)
        assert isinstance(prediction, PredictionPublic)
        assert prediction.lower < prediction.predicted_loss < prediction.upper
        assert prediction.provenance.run_ids == sorted(r.id for r in runs)
        by_spec = client.predict(spec=spec_dict("any-name"), width=256)
        assert by_spec.architecture_id == gelu.id and by_spec.width == 256
        many = client.predict_many([swiglu.id, gelu.id], n_params=1e8, level=0.8)
        assert [item.status for item in many.items] == [200, 200]
        assert many.items[1].prediction == prediction
        assert list(many.to_pandas()["architecture_id"]) == [swiglu.id, gelu.id]

        ranked = client.compare([gelu.id, swiglu.id], n_params=1e8)
        assert isinstance(ranked, ComparePublic)
        assert ranked.best_architecture_id == swiglu.id  # smaller A: lower loss everywhere
        assert abs(sum(c.probability_best for c in ranked.candidates) - 1) < 1e-9
        assert list(ranked.to_pandas()["name"]) == ["swiglu", "gelu"]


def test_tuning_and_checks_from_the_client(served: tuple[str, Engine]) -> None:
    url, engine = served
    with Client(url, token=TOKEN) as client:
        arch = client.create_architecture(spec_dict(parametrization={"base_width": 32}))
        with pytest.raises(APIError) as none_yet:
            client.get_tuning(arch.id)
        assert none_yet.value.status_code == 404
        tuning = client.create_tuning(arch.id, widths=[128], seeds=[0, 1])
        assert isinstance(tuning, TuningPublic) and tuning.status == "queued"
        assert client.create_tuning(arch.id, widths=[128], seeds=[0, 1]).id == tuning.id  # idempotent
        with pytest.raises(APIError) as bad:
            client.create_tuning(arch.id, grid_points=2)
        assert bad.value.status_code == 422 and "cannot bracket" in str(bad.value.detail)
        finish_runs(engine, arch.id, loss_of=lr_basin(lambda width: 0.012))
        done = client.wait_for_tuning(arch.id, poll_seconds=0.05, timeout=10, progress=False)
        assert done.status == "succeeded" and done.lr_star is not None
        assert done.lr_star == pytest.approx(0.012, rel=0.1)
        assert done.transfer["width"].verdict == "transfers"
        assert list(done.to_pandas()["width"]) == [32, 128]
        sweep = client.create_sweep(arch.id, widths=[32, 64])
        assert (sweep.lr, sweep.lr_source) == (done.ladder_lr, "tuned")
        pinned = client.create_sweep(arch.id, widths=[32], lr=0.002)
        assert (pinned.lr, pinned.lr_source) == (0.002, "pinned")
        check = client.coord_check(arch.id)
        assert isinstance(check, CoordCheckPublic)
        assert (check.lr, check.lr_source, check.verdict) == (done.ladder_lr, "tuned", "passes")


def test_errors_carry_the_servers_explanation(served: tuple[str, Engine]) -> None:
    url, _ = served
    with Client(url) as anonymous:  # no token: reads work, writes are refused
        assert anonymous.list_architectures() == []
        with pytest.raises(APIError) as refused:
            anonymous.create_architecture(spec_dict())
        assert refused.value.status_code == 401
    with Client(url, token=TOKEN) as client:
        with pytest.raises(APIError) as missing:
            client.get_architecture(12345)
        assert missing.value.status_code == 404
        with pytest.raises(APIError) as invalid:
            client.create_architecture(spec_dict(proxy_widths=[40]))
        assert invalid.value.status_code == 422 and "head size" in str(invalid.value.detail)


def test_idempotent_calls_are_retried_and_others_are_not() -> None:
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if len(calls) < 3:
            return httpx.Response(503, json={"detail": "restarting"})
        return httpx.Response(200, json={"status": "ok"})

    with Client("http://test", transport=httpx.MockTransport(flaky), retries=3) as client:
        assert client.health() == {"status": "ok"}
    assert calls == ["GET /healthz"] * 3

    calls.clear()

    def always_unavailable(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        return httpx.Response(503, json={"detail": "restarting"})

    # Every public write is idempotent by design (specs dedupe, sweeps dedupe), so the non-idempotent path
    # is exercised directly.
    unavailable = httpx.MockTransport(always_unavailable)
    with Client("http://test", transport=unavailable, retries=3) as client, pytest.raises(APIError):
        client._request("POST", "/v1/architectures/1/sweeps", idempotent=False, json={})
    assert calls == ["POST /v1/architectures/1/sweeps"]  # a non-idempotent write is sent once
