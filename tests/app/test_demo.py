"""`mupredict demo` end to end on tiny designs: server, in-process worker, real training, fit, comparison."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from app.demo import load_demo_specs, run_demo
from app.settings import Settings
from trainer import ArchitectureSpec

pytestmark = pytest.mark.slow


def tiny(name: str, activation: str) -> dict[str, object]:
    return {
        "name": name,
        "activation": activation,
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "proxy_widths": [16, 24, 32, 40],
        "training": {"steps": 30, "batch_tokens": 256, "eval_tokens": 2048},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_trains_fits_compares_and_reuses_finished_runs(tmp_path: Path) -> None:
    # Proxies of 30 steps have no scaling trend, and the fit-quality gate would rightly refuse to rank them
    # (tests/app/test_fit_quality_api.py); this test is about the demo's pipeline, so the gate is off.
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'demo.db'}", fit_gate=False)
    specs = [tiny("tiny-gelu", "gelu"), tiny("tiny-swiglu", "swiglu")]
    out = io.StringIO()
    port = free_port()
    result = run_demo(settings, port=port, serve=False, specs=specs, console=Console(file=out, width=200))
    text = out.getvalue()
    candidates = result["candidates"]
    assert isinstance(candidates, list) and {c["name"] for c in candidates} == {"tiny-gelu", "tiny-swiglu"}
    assert abs(sum(c["probability_best"] for c in candidates) - 1) < 1e-9
    assert result["n_params"] >= 10 * 12 * 40**2  # at least 10× the largest proxy's non-embedding N
    assert "wins with probability" in text and f"http://127.0.0.1:{port}/compare?ids=" in text
    assert text.count("η* = ") == 2 and "(tuned)" in text  # tuned first, the ladders trained at η*
    assert "× N · " in text and "× FLOPs beyond its largest proxy" in text
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as api, pytest.raises(httpx.ConnectError):
        api.get("/healthz")  # serve=False: the server stopped with the demo

    # A second start trains nothing: the same specs map to the same runs, already finished. Its console is
    # an 80-column terminal's: the table must fit it whole (no header or figure cut to "…").
    out2 = io.StringIO()
    again = run_demo(
        settings, port=free_port(), serve=False, specs=specs, console=Console(file=out2, width=80)
    )
    assert [c["predicted_loss"] for c in again["candidates"]] == [c["predicted_loss"] for c in candidates]
    narrow = out2.getvalue()
    flat = " ".join(narrow.split())  # the console wraps long lines at 80 columns
    assert "reusing its finished runs" in flat and "reusing its 8 finished runs" in flat
    assert "…" not in narrow and "P(best)" in narrow and "90% interval" in narrow
    for c in again["candidates"]:
        row = next(line for line in narrow.splitlines() if c["name"] in line and "│" in line)
        assert f"│ {c['rank']} │" in row and f"{c['predicted_loss']:.4f}" in row


def test_the_demo_designs_ship_and_validate() -> None:
    specs = [ArchitectureSpec.model_validate(spec) for spec in load_demo_specs()]
    assert [s.activation for s in specs] == ["gelu", "swiglu"]


@pytest.mark.timeout(1500)  # the subprocess's own limit: the suite's 600 s is for unit tests
def test_the_readme_main_command_prints_a_real_prediction(tmp_path: Path) -> None:
    """`make demo` runs `mupredict demo`: here the same command on the shipped designs, with the real
    recipe (LR tuning, two ladders of two seeds, the fit-quality gate on), on its own database and port,
    and without the final serving loop. Four to eleven minutes on two cores (633 s alone on the
    development machine on 2026-11-27, past the suite's default limit)."""
    env = {
        **os.environ,
        "MUPREDICT_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "MUPREDICT_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("MUPREDICT_API_TOKEN", None)
    mupredict = Path(sys.executable).with_name("mupredict")
    done = subprocess.run(
        [str(mupredict), "demo", "--no-serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "η* = " in out and "Predicted loss at N = " in out, out[-3000:]
    assert "gpt-swiglu" in out and "gpt-gelu" in out and "wins with probability" in out
