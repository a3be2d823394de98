"""PredictionService: one key (architecture, law, results version) for the current fit and every answer
memoised from it; a finished run changes the answer; concurrent misses fit once (issue 15 point 2)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import app.prediction_service as service_module
from app.api import create_app
from app.fits import current_fit
from app.prediction_service import PredictionService, results_version
from app.settings import Settings
from tests.app.api_helpers import finish_runs, spec_dict


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(_env_file=None, database_url=fresh_db_url))) as client:
        yield client


def _ladder(api: TestClient, seeds: list[int]) -> int:
    arch_id = int(api.post("/v1/architectures", json=spec_dict()).json()["id"])
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": seeds})
    finish_runs(api.app.state.engine, arch_id, noise=0.005)  # type: ignore[attr-defined]
    return arch_id


def test_an_answer_is_memoised_until_a_run_finishes(api: TestClient) -> None:
    arch_id = _ladder(api, [0])
    service: PredictionService = api.app.state.predictions  # type: ignore[attr-defined]
    ask = {"architecture_id": arch_id, "n_params": 1e8}
    first = api.post("/v1/predictions", json=ask)
    again = api.post("/v1/predictions", json=ask)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    before = results_version(api.app.state.engine, arch_id)  # type: ignore[attr-defined]
    # A second seed's runs finish: the version moves, and the next answer comes from a new fit.
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]})
    finish_runs(api.app.state.engine, arch_id, noise=0.005)  # type: ignore[attr-defined]
    assert results_version(api.app.state.engine, arch_id) != before  # type: ignore[attr-defined]
    after = api.post("/v1/predictions", json=ask).json()
    assert after["provenance"]["fit_id"] != first.json()["provenance"]["fit_id"]
    assert after["points_used"] > first.json()["points_used"]
    # Every memo entry is keyed by (architecture, law, version): the fit's key and its answers' agree.
    fit_keys = set(service._fits)
    assert {key for key, _ in service._answers} <= fit_keys
    assert all(key[0] == arch_id for key in fit_keys)


def test_concurrent_misses_fit_once(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    arch_id = _ladder(api, [0])
    service: PredictionService = api.app.state.predictions  # type: ignore[attr-defined]
    loads: list[int] = []
    gate = threading.Event()

    def slow_current_fit(*args: object, **kwargs: object) -> object:
        loads.append(1)
        gate.wait(timeout=5)  # hold the first loader until every thread has asked
        return current_fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service_module, "current_fit", slow_current_fit)
    fits: list[object] = []

    def ask() -> None:
        with service.sessions() as session:
            fits.append(service.current(session, arch_id))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    while not loads:
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)  # the others reach the flight lock
    gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(loads) == 1 and len(fits) == 6 and len({id(f) for f in fits}) == 1


def test_the_version_counts_succeeded_runs_only(api: TestClient) -> None:
    arch_id = int(api.post("/v1/architectures", json=spec_dict()).json()["id"])
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0]})
    engine = api.app.state.engine  # type: ignore[attr-defined]
    assert results_version(engine, arch_id)[0] == 0  # queued runs are not results
    finish_runs(engine, arch_id, noise=0.005)
    assert results_version(engine, arch_id)[0] == len(spec_dict()["proxy_widths"])


def test_a_batch_answers_each_architecture_as_a_single_prediction_would(api: TestClient) -> None:
    fitted = _ladder(api, [0])
    waiting = int(api.post("/v1/architectures", json=spec_dict("waiting", activation="relu2")).json()["id"])
    asked = {"n_params": 1e9, "level": 0.9, "interval": "expected"}
    batch = api.post("/v1/predictions/batch", json={"architecture_ids": [waiting, fitted, 99999], **asked})
    assert batch.status_code == 200, batch.text
    items = batch.json()["items"]
    assert [i["architecture_id"] for i in items] == [waiting, fitted, 99999]  # the request's order
    assert [i["status"] for i in items] == [409, 200, 404]
    single = api.post("/v1/predictions", json={"architecture_id": fitted, **asked}).json()
    assert items[1]["prediction"] == single  # the same answer, field for field
    assert "launch or wait for a sweep" in items[0]["detail"] and items[0]["prediction"] is None
    assert "no architecture with id 99999" in items[2]["detail"]
    empty = api.post("/v1/predictions/batch", json={"architecture_ids": [], **asked})
    assert empty.status_code == 422
