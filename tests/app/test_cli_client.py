"""`mupredict submit | status | predict | compare` against a live server (issue 20, point 7).

Training is the stand-in of the API tests (law-following results through the real queue); what is under
test is that each command reaches the documented endpoint, prints its table, and turns API and connection
errors into one line with an exit code.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from app.api import create_app
from app.cli import cli
from app.db import make_engine
from app.settings import Settings
from tests.app.api_helpers import finish_runs, grid_loss, spec_dict
from tests.app.live_server import live_server

TOKEN = "cli-token"


@pytest.fixture
def server(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A live API that requires a token for writes; the CLI finds the token in its own settings."""
    settings = Settings(_env_file=None, database_url=fresh_db_url, api_token=SecretStr(TOKEN))
    monkeypatch.setenv("MUPREDICT_API_TOKEN", TOKEN)
    with live_server(create_app(settings)) as url:
        yield url, fresh_db_url


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_submit_status_predict_and_compare(server: tuple[str, str], tmp_path: Path) -> None:
    url, db_url = server
    ids = []
    for name, overrides in (("gelu-cli", {}), ("swiglu-cli", {"activation": "swiglu"})):
        spec = tmp_path / f"{name}.json"
        spec.write_text(json.dumps(spec_dict(name, **overrides)))
        submitted = run("submit", str(spec), "--server", url, "--seeds", "0,1")
        assert submitted.exit_code == 0, submitted.output
        arch_id = int(re.search(r"id (\d+)", submitted.output).group(1))  # type: ignore[union-attr]
        sweep_id = int(re.search(r"sweep (\d+): 10 runs", submitted.output).group(1))  # type: ignore[union-attr]
        assert f"mupredict status {sweep_id} --wait" in submitted.output
        queued = run("status", str(sweep_id), "--server", url)
        assert queued.exit_code == 0 and "0 done · 0 running · 10 queued" in queued.output
        engine = make_engine(db_url)
        finish_runs(engine, arch_id, a=60.0 if name == "gelu-cli" else 52.0)
        engine.dispose()
        done = run("status", str(sweep_id), "--server", url, "--wait")
        assert done.exit_code == 0 and "10 done" in done.output and "succeeded" in done.output
        ids.append(arch_id)

    predicted = run("predict", str(ids[0]), "--n", "7e9", "--server", url)
    assert predicted.exit_code == 0, predicted.output
    assert "Predicted loss at N = 7e+09" in predicted.output and "90% interval (expected)" in predicted.output
    by_shape = run("predict", str(ids[0]), "--width", "1024", "--depth", "8", "--server", url)
    assert by_shape.exit_code == 0, by_shape.output
    assert "(width 1024, depth 8)" in by_shape.output and "extrapolated in depth" in by_shape.output
    ranked = run("compare", str(ids[0]), str(ids[1]), "--n", "7e9", "--server", url)
    assert ranked.exit_code == 0, ranked.output
    assert "P(best)" in ranked.output and "swiglu-cli wins with probability" in ranked.output
    # No grid for either design: the default law falls back to E + A·N^−α and the table says why.
    assert "law mu_scaling: auto: mu_scaling for every candidate" in " ".join(ranked.output.split())

    # A finished proxy, widened by μP upscaling and queued to train on.
    first = httpx.get(f"{url}/v1/runs", params={"architecture_id": ids[0], "width": 32}).json()["items"][0]
    upscaled = run("upscale", str(first["id"]), "--width", "64", "--steps", "50", "--server", url)
    assert upscaled.exit_code == 0, upscaled.output
    assert f"width 64, upscaled from run {first['id']} (noise 1), 50 steps" in upscaled.output
    refused = run("upscale", str(first["id"]), "--width", "48", "--server", url)
    assert refused.exit_code != 0 and "whole multiple" in refused.output


def test_errors_are_one_line_with_an_exit_code(server: tuple[str, str], tmp_path: Path) -> None:
    url, _ = server
    missing = run("predict", "999", "--n", "7e9", "--server", url)
    assert missing.exit_code == 1 and "error: HTTP 404: no architecture with id 999" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec_dict(activation="tanh")))
    refused = run("submit", str(bad), "--server", url)
    assert refused.exit_code == 1 and "error: HTTP 422: activation:" in refused.output
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = run("status", "1", "--server", closed)
    assert unreachable.exit_code == 1 and "cannot reach the server" in unreachable.output
    assert "mupredict serve" in unreachable.output and "Traceback" not in unreachable.output


def test_writes_need_the_token_from_the_settings(
    server: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setenv("MUPREDICT_API_TOKEN", "wrong")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_dict()))
    denied = run("submit", str(spec), "--server", url)
    assert denied.exit_code == 1 and "HTTP 401" in denied.output and "MUPREDICT_API_TOKEN" in denied.output


def test_predict_and_compare_in_tokens_and_compute(server: tuple[str, str], tmp_path: Path) -> None:
    """`--tokens` and `--compute` reach the token-horizon grid's fit; a budget names its split."""
    url, db_url = server
    ids = []
    for name, overrides in (("grid-a", {}), ("grid-b", {"activation": "swiglu"})):
        spec = spec_dict(name, training={"batch_tokens": 1024, "schedule": "wsd", "steps": 1600}, **overrides)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(spec))
        submitted = run("submit", str(path), "--server", url, "--no-sweep")
        assert submitted.exit_code == 0, submitted.output
        arch_id = int(re.search(r"id (\d+)", submitted.output).group(1))  # type: ignore[union-attr]
        budgets = [1024 * s for s in (200, 400, 800, 1600)]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            api.post(f"/v1/architectures/{arch_id}/sweeps", json={"seeds": [0, 1], "token_budgets": budgets})
        engine = make_engine(db_url)
        scale = 1.0 if name == "grid-a" else 0.97
        finish_runs(
            engine,
            arch_id,
            loss_of=lambda run, n, s=scale: s * grid_loss(n, run.steps * 1024),
        )
        engine.dispose()
        ids.append(arch_id)
    at_point = run("predict", str(ids[0]), "--n", "1e7", "--tokens", "2e8", "--server", url)
    assert at_point.exit_code == 0, at_point.output
    flat = " ".join(at_point.output.split())  # rich wraps a long title
    assert "D = 2e+08 tokens (C = 1.2e+16 FLOPs)" in flat and "kaplan" in flat
    budget = run("predict", str(ids[0]), "--compute", "1e18", "--server", url)
    assert budget.exit_code == 0, budget.output
    flat = " ".join(budget.output.split())
    assert "compute-optimal split: N*" in flat and "tokens per parameter" in flat
    ranked = run("compare", str(ids[0]), str(ids[1]), "--compute", "1e18", "--server", url)
    assert ranked.exit_code == 0, ranked.output
    flat = " ".join(ranked.output.split())
    assert "at C = 1e+18 FLOPs" in flat and "grid-b wins with probability" in flat
    assert "× 6ND" in flat  # the extrapolation in compute, stated per design
    neither = run("predict", str(ids[0]), "--server", url)
    assert neither.exit_code != 0 and "give exactly one of `n_params` and `width`" in " ".join(
        neither.output.split()
    )


def test_predict_and_compare_in_the_slice_law(server: tuple[str, str], tmp_path: Path) -> None:
    """`--law kaplan_slice` reaches the ladder's slice fit, γ taken from the design's own grid."""
    url, db_url = server
    ids = []
    for name, scale, overrides in (("slice-a", 1.0, {}), ("slice-b", 0.97, {"activation": "swiglu"})):
        training = {"batch_tokens": 1024, "schedule": "wsd", "steps": 1600}
        spec = spec_dict(name, training=training, n_layers=3, **overrides)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(spec))
        submitted = run("submit", str(path), "--server", url, "--no-sweep")
        assert submitted.exit_code == 0, submitted.output
        arch_id = int(re.search(r"id (\d+)", submitted.output).group(1))  # type: ignore[union-attr]
        engine = make_engine(db_url)
        for body in (
            {"seeds": [0, 1], "token_budgets": [1024 * s for s in (200, 400, 800, 1600)]},
            {"seeds": [0, 1]},
        ):
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                api.post(f"/v1/architectures/{arch_id}/sweeps", json=body)
            finish_runs(engine, arch_id, loss_of=lambda run, n, s=scale: s * grid_loss(n, run.steps * 1024))
        engine.dispose()
        ids.append(arch_id)
    predicted = run("predict", str(ids[0]), "--n", "1e7", "--law", "kaplan_slice", "--server", url)
    assert predicted.exit_code == 0, predicted.output
    assert "kaplan_slice" in " ".join(predicted.output.split())
    ranked = run("compare", str(ids[0]), str(ids[1]), "--n", "1e7", "--law", "kaplan_slice", "--server", url)
    assert ranked.exit_code == 0, ranked.output
    assert "slice-b wins with probability" in " ".join(ranked.output.split())
    assert "law kaplan_slice" in ranked.output
    # Both have grids: asked without a law, auto ranks them by the slice too, and says so.
    auto = run("compare", str(ids[0]), str(ids[1]), "--n", "1e7", "--server", url)
    assert "law kaplan_slice: auto: kaplan_slice" in " ".join(auto.output.split())
    unknown = run("predict", str(ids[0]), "--n", "1e7", "--law", "kaplan", "--server", url)
    assert unknown.exit_code != 0 and "law" in unknown.output
