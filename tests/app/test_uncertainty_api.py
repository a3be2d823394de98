"""The two questions through the API, extrapolation in every unit, fit integrity, and comparisons that
refuse losses that do not compare (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.api import create_app
from app.models import Run
from app.queue import ClaimedRun
from app.settings import Settings
from tests.app.api_helpers import finish_runs, law_loss, spec_dict
from trainer import ArchitectureSpec, count_params


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, database_url=fresh_db_url, max_width=1024)
    with TestClient(create_app(settings)) as client:
        yield client


def _ladder(api: TestClient, seeds: tuple[int, ...] = (0, 1), **overrides: object) -> int:
    arch_id = int(api.post("/v1/architectures", json=spec_dict(**overrides)).json()["id"])
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": list(seeds)})
    finish_runs(api.app.state.engine, arch_id, noise=0.005)  # type: ignore[attr-defined]
    return arch_id


def _predict(api: TestClient, **body: object) -> dict:
    response = api.post("/v1/predictions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_two_questions_have_one_law_and_different_spreads(api: TestClient) -> None:
    arch_id = _ladder(api)
    expected = _predict(api, architecture_id=arch_id, n_params=1e8, interval="expected")
    one_run = _predict(api, architecture_id=arch_id, n_params=1e8)  # the default: one new run
    four = _predict(api, architecture_id=arch_id, n_params=1e8, interval="run", seeds=4)
    assert (expected["interval"], one_run["interval"], one_run["seeds"], four["seeds"]) == (
        "expected",
        "run",
        1,
        4,
    )
    assert expected["predicted_loss"] == one_run["predicted_loss"] == four["predicted_loss"]

    def width(p: dict) -> float:
        return float(p["upper"] - p["lower"])

    assert width(expected) < width(four) < width(one_run)
    assert "pure error" in expected["noise_model"] and "2 shared seeds" in expected["noise_model"]
    bad = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8, "interval": "both"})
    assert bad.status_code == 422
    assert (
        api.post(
            "/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8, "seeds": 0}
        ).status_code
        == 422
    )


def test_the_profile_likelihood_is_asked_for_by_name_and_answers_from_the_same_fit(api: TestClient) -> None:
    arch_id = _ladder(api)
    delta = _predict(api, architecture_id=arch_id, n_params=1e9, interval="expected")
    prof = _predict(api, architecture_id=arch_id, n_params=1e9, interval="expected", method="profile")
    assert (delta["method"], prof["method"]) == ("delta", "profile")
    assert prof["predicted_loss"] == delta["predicted_loss"]
    assert prof["lower"] < prof["predicted_loss"] < prof["upper"]
    # The same fit, another method: a different interval (the memo keys on the method too).
    assert (prof["lower"], prof["upper"]) != (delta["lower"], delta["upper"])
    bad = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e9, "method": "bayes"})
    assert bad.status_code == 422 and "profile" in bad.text


def test_extrapolation_is_stated_in_n_parameters_width_and_flops(api: TestClient) -> None:
    arch_id = _ladder(api)
    spec = ArchitectureSpec.model_validate(spec_dict())
    by_width = _predict(api, architecture_id=arch_id, width=512, interval="expected")["extrapolation"]
    largest_total, largest_n = count_params(spec, 128)
    assert by_width["target_width"] == 512 and by_width["width"] == pytest.approx(4.0)
    assert by_width["n_params"] == pytest.approx(count_params(spec, 512)[1] / largest_n)
    assert by_width["total_params"] == pytest.approx(count_params(spec, 512)[0] / largest_total)
    assert by_width["flops"] > by_width["total_params"] > 1  # FLOPs grow with the readout and attention too
    by_n = _predict(api, architecture_id=arch_id, n_params=count_params(spec, 512)[1])["extrapolation"]
    assert by_n["target_width"] == 512 and by_n["width"] == pytest.approx(4.0)
    # The fit report names the rung every ratio is taken against, in the same units.
    report = api.get(f"/v1/architectures/{arch_id}/fit").json()["report"]
    assert "[[Proxies]]" in report
    assert (
        f"largest            = width 128, depth {spec.n_layers}: "
        f"N {largest_n:.4g} non-embedding, {largest_total:.4g} total" in report
    )


def test_runs_from_another_trainer_or_corpus_are_left_out_and_listed(api: TestClient) -> None:
    arch_id = _ladder(api)
    engine = api.app.state.engine  # type: ignore[attr-defined]
    runs = api.get("/v1/runs", params={"architecture_id": arch_id, "limit": 100}).json()["items"]
    stale, foreign = runs[0]["id"], runs[1]["id"]
    with Session(engine) as session:
        session.execute(update(Run).where(Run.id == stale).values(code_version="trainer-000000000000"))
        session.execute(update(Run).where(Run.id == foreign).values(corpus_fingerprint="f" * 64))
        session.commit()
    # The version changes only when a run finishes; a new sweep (same recipe) refreshes it here.
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1], "widths": [32]})
    prediction = _predict(api, architecture_id=arch_id, n_params=1e8)
    reasons = {e["run_id"]: e["reason"] for e in prediction["excluded_runs"]}
    assert set(reasons) == {stale, foreign}
    assert "trainer-000000000000" in reasons[stale] and "retrain" in reasons[stale]
    assert "corpus ffffffffffff" in reasons[foreign]
    assert stale not in prediction["provenance"]["run_ids"] and prediction["points_used"] == len(runs) - 2
    fit = api.get(f"/v1/architectures/{arch_id}/fit").json()
    assert {e["run_id"] for e in fit["excluded_runs"]} == {stale, foreign}
    assert {p["seed"] for p in fit["points"]} == {0, 1}


def test_compare_is_paired_by_seed_and_refuses_other_tokenizers(api: TestClient) -> None:
    a = _ladder(api, name="gelu")
    b = _ladder(api, name="swiglu", activation="swiglu")
    ranked = api.post("/v1/compare", json={"architecture_ids": [a, b], "n_params": 1e8}).json()
    assert ranked["interval"] == "expected"
    for candidate in ranked["candidates"]:
        stated = candidate["extrapolation"]
        assert stated["n_params"] == pytest.approx(candidate["extrapolation_factor"])
        assert stated["width"] > 1 and stated["flops"] > 1 and stated["total_params"] > 1
    # Same tokenizer, other data: the ladders' corpus fingerprints differ, and compare says so.
    with Session(api.app.state.engine) as session:  # type: ignore[attr-defined]
        session.execute(update(Run).where(Run.architecture_id == b).values(corpus_fingerprint="e" * 64))
        session.commit()
    api.post(f"/v1/architectures/{b}/sweeps", json={"seeds": [0, 1], "widths": [32]})  # refresh the fit
    other_data = api.post("/v1/compare", json={"architecture_ids": [a, b], "n_params": 1e8})
    assert other_data.status_code == 422 and "different corpora" in other_data.json()["detail"][0]["msg"]
    bpe = _ladder(api, name="bpe", dataset={"tokenizer": "bpe", "vocab_size": 512})
    refused = api.post("/v1/compare", json={"architecture_ids": [a, bpe], "n_params": 1e8})
    assert refused.status_code == 422
    message = refused.json()["detail"][0]["msg"]
    assert (
        "different tokenizers" in message
        and "bpe, vocabulary 512" in message
        and "byte, vocabulary 256" in message
    )


def _on_prepared_text(
    api: TestClient, arch_id: int, corpus: str, text: str, bytes_per_token: float, refresh: int = 2
) -> None:
    """Mark the ladder as trained on a prepared corpus (what the trainer records from its manifest); a
    new sweep (`refresh` seeds at one width, queued runs only) makes the fit current again."""
    with Session(api.app.state.engine) as session:  # type: ignore[attr-defined]
        session.execute(
            update(Run)
            .where(Run.architecture_id == arch_id)
            .values(corpus_fingerprint=corpus, text_fingerprint=text, val_bytes_per_token=bytes_per_token)
        )
        session.commit()
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": list(range(refresh)), "widths": [32]})


def test_tokenizers_of_one_prepared_text_compare_in_bits_per_byte(api: TestClient) -> None:
    """One text prepared with a byte tokenizer and with a 4-bytes-per-token BPE: per token the BPE
    design's loss is 3.5× higher, per byte it is lower, and the ranking says so in bits per byte."""
    prepared = {"source": "data/text-bytes", "tokenizer": "prepared", "vocab_size": 256}
    a = _ladder(api, name="bytes", dataset=prepared)
    b = int(
        api.post(
            "/v1/architectures",
            json=spec_dict(name="bpe", dataset={**prepared, "source": "data/text-bpe", "vocab_size": 4096}),
        ).json()["id"]
    )
    api.post(f"/v1/architectures/{b}/sweeps", json={"seeds": [0, 1]})
    finish_runs(api.app.state.engine, b, noise=0.005, loss_of=lambda run, n: 3.5 * law_loss(n))  # type: ignore[attr-defined]
    _on_prepared_text(api, a, "a" * 64, "t" * 64, 1.0)
    _on_prepared_text(api, b, "b" * 64, "t" * 64, 4.0)
    ranked = api.post("/v1/compare", json={"architecture_ids": [a, b], "n_params": 1e8})
    assert ranked.status_code == 200, ranked.text
    body = ranked.json()
    assert body["unit"] == "bits/byte" and body["best_architecture_id"] == b
    assert "bits per byte" in body["warnings"][0] and "4.000 bytes/token" in body["warnings"][0]
    for candidate in body["candidates"]:
        per_token = _predict(
            api, architecture_id=candidate["architecture_id"], n_params=1e8, interval="expected"
        )
        factor = 1 / (math.log(2) * (1.0 if candidate["architecture_id"] == a else 4.0))
        assert candidate["unit_factor"] == pytest.approx(factor)
        assert candidate["predicted_loss"] == pytest.approx(per_token["predicted_loss"] * factor)
        assert candidate["upper"] == pytest.approx(per_token["upper"] * factor)
    assert _predict(api, architecture_id=b, n_params=1e8)["provenance"]["val_bytes_per_token"] == 4.0
    # Another text (or a corpus whose text is unknown) is refused, with the way to compare them.
    _on_prepared_text(api, b, "b" * 64, "u" * 64, 4.0, refresh=3)
    refused = api.post("/v1/compare", json={"architecture_ids": [a, b], "n_params": 1e8})
    assert refused.status_code == 422
    message = " ".join(e["msg"] for e in refused.json()["detail"])
    assert "different tokenizers" in message and "mupredict data prepare" in message
    assert "bits per byte" in message


def test_a_sweep_can_share_one_batch_order_across_its_seeds(api: TestClient) -> None:
    arch_id = int(api.post("/v1/architectures", json=spec_dict()).json()["id"])
    shared = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1], "data_seed": 7}).json()
    assert shared["data_seed"] == 7
    assert {(r["seed"], r["data_seed"]) for r in shared["runs"]} == {(0, 7), (1, 7)}
    again = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [1, 0], "data_seed": 7}).json()
    assert again["id"] == shared["id"]  # idempotent
    own = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1]}).json()
    assert own["data_seed"] is None and {(r["seed"], r["data_seed"]) for r in own["runs"]} == {(0, 0), (1, 1)}
    assert not {r["id"] for r in own["runs"]} & {r["id"] for r in shared["runs"]}  # other runs
    finish_runs(api.app.state.engine, arch_id, noise=0.005)  # type: ignore[attr-defined]
    points = api.get(f"/v1/architectures/{arch_id}/fit").json()["points"]
    # One recipe (LR, steps, depth): every (seed, data seed) pair is a replicate the fit pools and labels.
    assert {(p["seed"], p["data_seed"]) for p in points} == {(0, 0), (1, 1), (0, 7), (1, 7)}
    bad = api.post(f"/v1/architectures/{arch_id}/sweeps", json={"data_seed": -1})
    assert bad.status_code == 422


def test_too_few_usable_widths_name_the_runs_left_out(api: TestClient) -> None:
    """Widths that finished under another trainer version do not count toward a fit, and the 409 says
    so (before, "5 proxy size(s) finished, 4 needed" read as a contradiction)."""
    arch_id = _ladder(api)
    runs = api.get("/v1/runs", params={"architecture_id": arch_id, "limit": 100}).json()["items"]
    widths = sorted({r["width"] for r in runs})
    stale = [r["id"] for r in runs if r["width"] in widths[:2]]
    with Session(api.app.state.engine) as session:  # type: ignore[attr-defined]
        session.execute(update(Run).where(Run.id.in_(stale)).values(code_version="trainer-000000000000"))
        session.commit()
    api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1, 2], "widths": [32]})  # refresh
    refused = api.post("/v1/predictions", json={"architecture_id": arch_id, "n_params": 1e8})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert f"{len(widths) - 2} usable of {len(widths)} proxy size(s) finished" in detail
    assert f"Left out of the fit: run {min(stale)}: trained by trainer-000000000000" in detail
    assert f"and {len(stale) - 3} more" in detail


def test_the_fit_reports_its_own_holdout_check_and_predictions_warn_when_it_misses(api: TestClient) -> None:
    engine = api.app.state.engine  # type: ignore[attr-defined]
    follows = _ladder(api, seeds=(0, 1, 2))
    fit = api.get(f"/v1/architectures/{follows}/fit").json()
    held = fit["holdout"]
    largest = max(p["n_params"] for p in fit["points"])
    at_largest = [p["loss"] for p in fit["points"] if p["n_params"] == largest]
    assert held["n_params"] == largest and held["runs"] == len(at_largest) == 3
    assert held["measured"] == pytest.approx(sum(at_largest) / 3)
    assert held["extrapolation_factor"] > 1 and held["lower"] < held["predicted"] < held["upper"]
    assert held["inside"] and abs(held["error"]) < 0.01
    assert "[[Holdout check]]" in fit["report"] and "inside the interval" in fit["report"]
    quiet = _predict(api, architecture_id=follows, n_params=1e8)
    assert not any("own check missed" in w for w in quiet["warnings"])

    # A ladder whose largest width gains 4 % less than the law of the smaller ones promises (another
    # design: the same spec would share the first ladder's runs).
    spec = spec_dict(name="stalls", activation="swiglu")
    stalls = int(api.post("/v1/architectures", json=spec).json()["id"])
    api.post(f"/v1/architectures/{stalls}/sweeps", json={"seeds": [0, 1, 2]})
    top = count_params(ArchitectureSpec.model_validate(spec), 128)[1]  # the largest proxy width

    def loss(claimed: ClaimedRun, n: int) -> float:
        return law_loss(n) * (1.04 if n >= top else 1.0) * (1 + 0.002 * (claimed.seed - 1))

    finish_runs(engine, stalls, loss_of=loss)
    missed = api.get(f"/v1/architectures/{stalls}/fit").json()["holdout"]
    assert not missed["inside"] and missed["error"] == pytest.approx(-0.04 / 1.04, abs=0.01)
    warned = _predict(api, architecture_id=stalls, n_params=1e8)
    [warning] = [w for w in warned["warnings"] if "own check missed" in w]
    assert f"{missed['measured']:.4f}" in warning and "add larger proxies" in warning
    ranked = api.post("/v1/compare", json={"architecture_ids": [follows, stalls], "n_params": 1e8}).json()
    notes = {c["architecture_id"]: c["warnings"] for c in ranked["candidates"]}
    assert any("own check missed" in w for w in notes[stalls])
    assert not any("own check missed" in w for w in notes[follows])
