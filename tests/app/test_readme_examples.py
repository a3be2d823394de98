"""The README's runnable examples and examples/notebook.py, executed as written against a live server.

Training is replaced by a stand-in worker that completes every queued run with a law-following loss (and
an LR basin, so tunings find an η*): what is tested is that each documented call exists, takes the
documented input and answers 2xx in the documented order, not the science (the demo test trains).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.api import create_app
from app.cli import cli
from app.models import Run, RunStatus
from app.queue import ClaimedRun
from app.settings import Settings
from tests.app.api_helpers import finish_runs, grid_loss, lr_basin
from tests.app.live_server import live_server

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section_block(heading: str, language: str) -> str:
    """The first `language` block after a heading of the README."""
    start = README.index(heading)
    return re.findall(rf"```{language}\n(.*?)```", README[start:], flags=re.S)[0]


def _commands(block: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    return [
        line.split("  #")[0].strip()
        for line in joined.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _queued_architectures(engine: Engine) -> list[int]:
    with Session(engine) as session:
        rows = session.scalars(
            select(Run.architecture_id).where(Run.status == RunStatus.queued).distinct()
        ).all()
    return list(rows)


def _drain(engine: Engine) -> None:
    """Train (stand-in) every queued run, and the runs that finishing them queues (tuning grids)."""
    basin = lr_basin(lambda _width: 0.01)
    for _ in range(50):
        pending = _queued_architectures(engine)
        if not pending:
            return
        for arch_id in pending:
            finish_runs(engine, arch_id, loss_of=basin)
    raise AssertionError("the queue did not drain")


class StandInWorker:
    """A thread that keeps the queue drained while a client script waits on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.stop = engine, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            _drain(self.engine)

    def __enter__(self) -> StandInWorker:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'readme.db'}")
    app = create_app(settings)
    with live_server(app) as url:
        yield url, app.state.engine


def test_the_readme_curl_sequence_answers_2xx_in_order(server: tuple[str, Engine]) -> None:
    url, engine = server
    commands = _commands(_section_block("### HTTP API", "bash"))
    assert len(commands) >= 12 and all(c.startswith("curl") for c in commands)
    for command in commands:
        _drain(engine)  # each call is documented as made once the previous one's work is done
        argv = [a.replace("localhost:8000", url.removeprefix("http://")) for a in shlex.split(command)]
        done = subprocess.run(
            [*argv, "-o", "/dev/null", "-w", "%{http_code}"], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("2"), f"{command} → HTTP {done.stdout}"


def test_the_readme_token_horizon_block_answers_2xx_in_order(server: tuple[str, Engine]) -> None:
    """The token-horizon curl calls on the shipped gpt_gelu spec (a warmup-stable-decay recipe) as
    architecture 1, with stand-in branches whose loss falls with N and with D."""
    url, engine = server
    spec = json.loads((ROOT / "examples/specs/gpt_gelu.json").read_text())
    assert httpx.post(f"{url}/v1/architectures", json=spec).json()["id"] == 1
    rng = np.random.default_rng(0)

    def loss(run: ClaimedRun, n_params: int) -> float:
        tokens = run.steps * spec["training"]["batch_tokens"]
        return grid_loss(n_params, tokens) * float(np.exp(0.003 * rng.standard_normal()))

    for command in _commands(_section_block("### Token horizons", "bash")):
        for _ in range(10):  # trunks first, then the branches they unblock
            finish_runs(engine, 1, loss_of=loss)
        argv = [a.replace("localhost:8000", url.removeprefix("http://")) for a in shlex.split(command)]
        done = subprocess.run(
            [*argv, "-o", "/dev/null", "-w", "%{http_code}"], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("2"), f"{command} → HTTP {done.stdout}"


def test_the_readme_depth_block_answers_2xx_in_order(server: tuple[str, Engine]) -> None:
    """The depth curl calls on the shipped gpt_gelu spec as architecture 1: a (width, depth) grid whose
    stand-in losses follow a law in N, then the fit and predictions by shape."""
    url, engine = server
    spec = json.loads((ROOT / "examples/specs/gpt_gelu.json").read_text())
    assert httpx.post(f"{url}/v1/architectures", json=spec).json()["id"] == 1
    commands = _commands(_section_block("### Depth", "bash"))
    assert [next(w for w in c.split() if w.startswith("localhost")) for c in commands] == [
        "localhost:8000/v1/architectures/1/sweeps",
        "localhost:8000/v1/architectures/1/fit",
        "localhost:8000/v1/predictions",
        "localhost:8000/v1/predictions",
    ]
    for command in commands:
        finish_runs(engine, 1)
        argv = [a.replace("localhost:8000", url.removeprefix("http://")) for a in shlex.split(command)]
        done = subprocess.run(
            [*argv, "-o", "/dev/null", "-w", "%{http_code}"], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("2"), f"{command} → HTTP {done.stdout}"
    fit = httpx.get(f"{url}/v1/architectures/1/fit").json()
    assert sorted({p["depth"] for p in fit["points"]}) == [2, 4, 8] and fit["shape"]["testable"]


def test_the_readme_notebook_client_block_runs(server: tuple[str, Engine]) -> None:
    url, engine = server
    code = _section_block("### Notebook client", "python").replace("http://127.0.0.1:8000", url)
    with StandInWorker(engine):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_notebook_example_runs_to_its_last_cell(server: tuple[str, Engine]) -> None:
    url, engine = server
    env = {**os.environ, "MUPREDICT_URL": url}
    env.pop("MUPREDICT_API_TOKEN", None)
    with StandInWorker(engine):
        done = subprocess.run(
            [sys.executable, "examples/notebook.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[[Proxies]]" in done.stdout  # the fit report was printed (cell 4)


def test_the_readme_fit_command_reads_the_shipped_points() -> None:
    command = next(c for c in _commands(_section_block("### Command line", "bash")) if " fit " in c)
    argv = shlex.split(command)
    mupredict = Path(sys.executable).with_name("mupredict")
    done = subprocess.run([str(mupredict), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[[Prediction]]" in done.stdout and "new run" in done.stdout


def test_the_readme_own_data_example_trains_a_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prepare command as written (a shell line, on the shipped public-domain texts), then
    `mupredict train` on the dataset block it prints; running it again does nothing."""
    section = "### Bringing your own data"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the README's paths are the repository's
    command = _section_block(section, "bash").strip()
    bin_dir = Path(sys.executable).parent  # the same installation's `mupredict` and `python`
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    first = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    printed = first.stdout[first.stdout.index('"dataset": ') :].strip()
    dataset = json.loads("{" + printed + "}")["dataset"]
    documented = json.loads("{" + _section_block(section, "json") + "}")["dataset"]
    assert dataset == documented  # the printed block is the README's
    again = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=600)
    assert "already prepared (nothing to do)" in again.stdout
    spec = {
        "name": "own-data",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "proxy_widths": [16],
        "training": {"steps": 3, "batch_tokens": 256, "eval_tokens": 512},
        "dataset": dataset,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = CliRunner().invoke(cli, ["train", "--spec", "spec.json", "--width", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout[result.stdout.index("{") :])
    assert run["status"] == "succeeded" and run["tokenizer"].startswith("bpe:1024 (sha256 ")


def test_the_readme_client_commands_run_in_order(server: tuple[str, Engine]) -> None:
    url, engine = server
    blocks = re.findall(r"```bash\n(.*?)```", README[README.index("### Command line") :], flags=re.S)
    commands = _commands(blocks[1])
    assert [c.split()[1] for c in commands] == ["submit", "submit", "status", "predict", "compare", "upscale"]
    mupredict = Path(sys.executable).with_name("mupredict")
    env = {**os.environ, "MUPREDICT_SERVER": url}
    printed = {}
    with StandInWorker(engine):
        for command in commands:
            done = subprocess.run(
                [str(mupredict), *shlex.split(command)[1:]],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
            printed[command.split()[1]] = done.stdout
    assert "wins with probability" in printed["compare"]  # compare printed its table
    assert "width 32, upscaled from run 1" in printed["upscale"]


def test_the_readme_concepts_block_runs(server: tuple[str, Engine]) -> None:
    """The LR-tuning calls of the Concepts section, on an architecture registered the README's way."""
    url, engine = server
    setup = (
        "import json\nfrom app.client import Client\n"
        f"client = Client({url!r})\n"
        "arch = client.create_architecture(json.load(open('examples/specs/gpt_gelu.json')))\n"
    )
    code = setup + _section_block("## Concepts", "python") + "\nassert tuning.status == 'succeeded'\n"
    with StandInWorker(engine):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_the_readme_train_command_trains_as_written() -> None:
    """`mupredict train` exactly as the README shows it (one real proxy: about a minute on 2 cores)."""
    command = next(c for c in _commands(_section_block("### Command line", "bash")) if " train " in c)
    mupredict = Path(sys.executable).with_name("mupredict")
    done = subprocess.run(
        [str(mupredict), *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout[done.stdout.index("{") :])
    assert run["status"] == "succeeded" and run["width"] == 64 and run["steps"] == 1500
