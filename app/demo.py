"""`mupredict demo`: the whole mission on the embedded default (SQLite, CPU, the built-in corpus).

It serves the API and dashboard, starts local worker processes, submits two candidate designs, tunes
each one's LR at its base width, trains each proxy ladder at its tuned η*, fits, and prints which design
wins at a target N far beyond the largest proxy. Everything goes through the public HTTP API, as a
researcher's notebook would; a second start reuses finished runs (tuning and ladder alike).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table

from app.api import create_app
from app.client import APIError, Client
from app.schemas import ComparePublic
from app.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "specs"
DEMO_SPECS = ("gpt_gelu.json", "gpt_swiglu.json")
DEMO_SEEDS = (0, 1)


def load_demo_specs() -> list[dict[str, object]]:
    missing = [name for name in DEMO_SPECS if not (EXAMPLES / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"demo specs {missing} not found under {EXAMPLES}: run the demo from a checkout of the repository"
        )
    return [json.loads((EXAMPLES / name).read_text()) for name in DEMO_SPECS]


def default_workers() -> int:
    """One single-threaded worker per core, up to 4: a tiny proxy gains little from a second thread
    (1.3× on the 2-core box) but a second process doubles the runs done at once."""
    return max(1, min(4, os.cpu_count() or 1))


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the demo's main thread owns Ctrl-C
        pass


def start_server(settings: Settings, host: str, port: int) -> tuple[_Server, threading.Thread]:
    server = _Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start on {host}:{port}: is the port in use? try --port")
        if not thread.is_alive():
            raise RuntimeError(f"the API could not start on {host}:{port}: is the port in use? try --port")
        time.sleep(0.05)
    return server, thread


class LocalWorkers:
    """`mupredict worker` processes on this machine, one torch thread each, logging to one file."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.log_path = Path(tempfile.gettempdir()) / f"mupredict-demo-workers-{os.getpid()}.log"
        env = {
            **os.environ,
            "MUPREDICT_DATABASE_URL": settings.database_url,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        command = [sys.executable, "-m", "app.cli", "worker", "--device", "cpu", "--poll-seconds", "0.5"]
        self._log = self.log_path.open("ab")
        self.processes = [
            subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
            for _ in range(count)
        ]

    def check(self) -> None:
        """Raise when every worker has exited: nothing would ever finish the queued runs."""
        if all(p.poll() is not None for p in self.processes):
            raise RuntimeError(f"every local worker exited: see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM: each worker hands its run in flight back to the queue and exits."""
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        self._log.close()


def run_demo(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    target_factor: float = 30.0,
    serve: bool = True,
    console: Console | None = None,
    specs: list[dict[str, object]] | None = None,
    workers: int | None = None,
) -> dict[str, object]:
    """Run the demo; returns the comparison (and keeps serving the dashboard when `serve`).

    `specs` replaces the two example designs (the tests use tiny ones).
    """
    console = console or Console()
    logging.basicConfig(level=logging.WARNING)
    server, server_thread = start_server(settings, host, port)
    base_url = f"http://{host}:{port}"
    pool = LocalWorkers(settings, workers or default_workers())
    token = settings.api_token.get_secret_value() if settings.api_token else None
    try:
        with Client(base_url, token=token) as client:
            archs = [client.create_architecture(spec) for spec in specs or load_demo_specs()]
            # 1. Tune: an LR sweep at each design's base width (×√2 grid, 2 seeds, extended until the
            #    minimum is bracketed). Both are queued first, so the workers run them side by side.
            for arch in archs:
                tuning = client.create_tuning(arch.id, widths=[])
                done = tuning.runs.succeeded + tuning.runs.diverged
                what = "reusing its finished runs" if tuning.status == "succeeded" else f"{done} run(s) done"
                console.print(
                    f"[bold]{arch.name}[/]: tuning the LR at width {arch.spec.parametrization.base_width} "
                    f"around {arch.spec.training.lr:g} ({what})"
                )
            # 2. Train each ladder at its η*, as soon as its tuning is done.
            sweeps = []
            for arch in archs:
                tuning = client.wait_for_tuning(arch.id, poll_seconds=0.5, on_poll=pool.check)
                if tuning.status == "succeeded":
                    console.print(
                        f"[bold]{arch.name}[/]: η* = {tuning.lr_star:.3g} "
                        f"[{tuning.lower:.3g}, {tuning.upper:.3g}] at width {tuning.per_width[0].width}"
                    )
                else:
                    console.print(
                        f"[yellow]{arch.name}: tuning failed ({tuning.error}); the spec's lr is used[/]"
                    )
                # Two seeds per width: the noise model needs replicates, and shared seeds pair the
                # designs in the comparison (predictor.compare).
                sweep = client.create_sweep(arch.id, seeds=list(DEMO_SEEDS))
                reuse = f", reusing its {sweep.counts.succeeded} finished runs" if sweep.done else ""
                console.print(
                    f"[bold]{arch.name}[/]: ladder {arch.spec.proxy_widths} at lr {sweep.lr:g} "
                    f"({sweep.lr_source}){reuse}"
                )
                sweeps.append(sweep)
            for sweep in sweeps:
                client.wait_for(sweep, poll_seconds=0.5, on_poll=pool.check)
            largest = max(client.get_fit(a.id).n_params_range[1] for a in archs)
            target = largest * target_factor
            try:
                result: ComparePublic | None = client.compare([a.id for a in archs], n_params=target)
            except APIError as err:
                if err.status_code != 409:
                    raise
                # The fit-quality gate refused to rank (predictor.quality): say why, never a made-up number.
                result = None
                console.print(f"[yellow]No prediction: {err.detail}[/]")
        if result is not None:
            title = (
                f"Predicted loss at N = {target:.3g} non-embedding parameters "
                f"({target_factor:g}× the largest proxy)"
            )
            print_table(console, result, title)
        ids = ",".join(str(a.id) for a in archs)
        console.print(f"Dashboard: {base_url}/compare?ids={ids}&n={target:.3g}  (Ctrl-C to stop)")
        if serve:
            while True:
                time.sleep(0.5)
        return result.model_dump() if result is not None else {"candidates": [], "n_params": target}
    finally:
        pool.stop()
        server.should_exit = True
        server_thread.join(timeout=30)


def print_table(console: Console, result: ComparePublic, title: str) -> None:
    """The ranked candidates, how far each extrapolates, their warnings and those left out (the demo's
    and `mupredict compare`'s table)."""
    # Fits an 80-column terminal: the unit goes in the title, the figures never shrink (min_width), and
    # only a long design name folds onto a second line.
    table = Table(title=f"{title}, in {result.unit}")
    table.add_column("#", no_wrap=True)
    table.add_column("design", overflow="fold")
    for column in ("expected", f"{result.level:.0%} interval", "P(best)", "×N"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    for c in result.candidates:
        table.add_row(
            str(c.rank),
            c.name,
            f"{c.predicted_loss:.4f}",
            f"[{c.lower:.4f}, {c.upper:.4f}]",
            f"{c.probability_best:.2f}",
            f"{c.extrapolation_factor:.3g}",
        )
    console.print(table)
    if result.law is not None:  # asked by N: the ladders' law, and how `auto` chose it
        why = "" if result.law_choice in (None, "asked") else f": {result.law_choice}"
        console.print(f"law {result.law}{why}", soft_wrap=True)
    for c in result.candidates:
        e = c.extrapolation
        parts = [f"{e.n_params:.3g}× N"] + [
            f"{value:.3g}× {unit}"
            for value, unit in (
                (e.total_params, "parameters"),
                (e.width, "width"),
                (e.flops, "FLOPs"),
                (e.tokens, "D"),
                (e.compute, "6ND"),
            )
            if value is not None
        ]
        at = (
            f" (ranked at N {c.n_params:.3g}, D {c.tokens:.3g})"
            if c.tokens is not None and c.n_params
            else ""
        )
        console.print(f"{c.name}: {' · '.join(parts)} beyond its largest proxy{at}")
    for c in result.candidates:
        for warning in c.warnings:
            console.print(f"[yellow]{c.name}: {warning}[/]")
    for warning in result.warnings:
        console.print(f"[yellow]{warning}[/]")
    for left_out in result.excluded:
        reasons = "; ".join(left_out.reasons)
        console.print(f"[yellow]{left_out.name}: not ranked, no usable scaling trend: {reasons}[/]")
    best = result.candidates[0]
    console.print(f"[bold green]{best.name}[/] wins with probability {best.probability_best:.2f}.")
