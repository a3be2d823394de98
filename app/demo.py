"""`mupredict demo`: the whole mission on the embedded default (SQLite, CPU, the built-in corpus).

It serves the API and dashboard, runs a local worker, submits two candidate designs, trains their proxy
ladders, fits, and prints which design wins at a target N far beyond the largest proxy. Everything goes
through the public HTTP API, as a researcher's notebook would; a second start reuses finished runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table

from app.api import create_app
from app.client import Client
from app.settings import Settings
from app.worker import Worker

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "specs"
DEMO_SPECS = ("gpt_gelu.json", "gpt_swiglu.json")


def load_demo_specs() -> list[dict[str, object]]:
    missing = [name for name in DEMO_SPECS if not (EXAMPLES / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"demo specs {missing} not found under {EXAMPLES}: run the demo from a checkout of the repository"
        )
    return [json.loads((EXAMPLES / name).read_text()) for name in DEMO_SPECS]


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


def run_demo(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    target_factor: float = 30.0,
    serve: bool = True,
    console: Console | None = None,
    specs: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    """Run the demo; returns the comparison (and keeps serving the dashboard when `serve`).

    `specs` replaces the two example designs (the tests use tiny ones).
    """
    console = console or Console()
    logging.basicConfig(level=logging.WARNING)
    server, server_thread = start_server(settings, host, port)
    base_url = f"http://{host}:{port}"
    worker = Worker(settings, device="cpu", poll_seconds=0.5)
    worker_thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    worker_thread.start()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    try:
        with Client(base_url, token=token) as client:
            archs = [client.create_architecture(spec) for spec in specs or load_demo_specs()]
            for arch in archs:
                console.print(f"[bold]{arch.name}[/]: proxy widths {arch.spec.proxy_widths}")
                sweep = client.create_sweep(arch.id)
                if sweep.done:
                    console.print(f"  reusing its {sweep.counts.succeeded} finished proxy runs")
                else:
                    console.print(f"  training {len(sweep.runs)} proxies on the local CPU worker")
                client.wait_for(sweep, poll_seconds=0.5)
            largest = max(client.get_fit(a.id).n_params_range[1] for a in archs)
            target = largest * target_factor
            result = client.compare([a.id for a in archs], n_params=target)
        table = Table(
            title=f"Predicted loss at N = {target:.3g} non-embedding parameters "
            f"({target_factor:g}× the largest proxy)"
        )
        for column in ("#", "design", "loss", "90% interval", "P(best)", "extrapolation"):
            table.add_column(column, no_wrap=True)
        for c in result.candidates:
            table.add_row(
                str(c.rank),
                c.name,
                f"{c.predicted_loss:.4f}",
                f"[{c.lower:.4f}, {c.upper:.4f}]",
                f"{c.probability_best:.2f}",
                f"{c.extrapolation_factor:.0f}×",
            )
        console.print(table)
        for c in result.candidates:
            for warning in c.warnings:
                console.print(f"[yellow]{c.name}: {warning}[/]")
        best = result.candidates[0]
        console.print(f"[bold green]{best.name}[/] wins with probability {best.probability_best:.2f}.")
        ids = ",".join(str(a.id) for a in archs)
        console.print(f"Dashboard: {base_url}/compare?ids={ids}&n={target:.3g}  (Ctrl-C to stop)")
        if serve:
            while worker_thread.is_alive():
                time.sleep(0.5)
        return result.model_dump()
    finally:
        worker.stopping.set()
        server.should_exit = True
        worker_thread.join(timeout=60)
        server_thread.join(timeout=30)
