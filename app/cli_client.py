"""`mupredict submit | status | predict | compare`: the command line as a client of a running server.

Each command talks to the API through `app.client.Client` (`--server`, default `MUPREDICT_SERVER` or
http://127.0.0.1:8000; the token is the settings' `MUPREDICT_API_TOKEN`), and prints the tables the demo
prints. An API error is printed as the server's message (which names the fix), with exit code 1; a server
that cannot be reached is one line that says how to start one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from app.client import APIError, Client
from app.schemas import SweepPublic

SERVER = typer.Option(
    "http://127.0.0.1:8000", "--server", envvar="MUPREDICT_SERVER", help="Base URL of a running API."
)
TARGET_N = typer.Option(
    None, "--n", help="Non-embedding parameters to predict at (7e9, 1.3e10, ...); or give --compute."
)
TOKENS = typer.Option(
    None, "--tokens", help="Training tokens D: at (N, D), from the token-horizon grid's fit (law kaplan)."
)
COMPUTE = typer.Option(
    None, "--compute", help="A training budget in FLOPs (6ND) instead of --n: at the compute-optimal N*, D*."
)
RATIO = typer.Option(None, "--tokens-per-parameter", help="With --compute: split it at D = r·N instead.")
LEVEL = typer.Option(0.9, min=0.01, max=0.99, help="Central probability of the interval.")
LAW = typer.Option(
    None,
    help="By N: mu_scaling, kaplan_slice (the kaplan law at fixed D, γ from the token-horizon grid), or "
    "auto (the slice where the grid gives γ); default: the service's.",
)


@contextmanager
def connected(server: str) -> Iterator[Client]:
    """A client with the settings' token; API and connection errors become one line and an exit code."""
    from app.settings import Settings

    token = Settings().api_token  # read now, not a cached copy: one client command, one reading
    try:
        with Client(server, token=token.get_secret_value() if token else None) as client:
            yield client
    except APIError as err:
        typer.echo(f"error: HTTP {err.status_code}: {_detail(err.detail)}", err=True)
        raise typer.Exit(code=1) from err
    except httpx.TransportError as err:
        typer.echo(
            f"error: cannot reach the server at {server} ({type(err).__name__}): start one with "
            "`mupredict serve`, or give its address with --server / MUPREDICT_SERVER",
            err=True,
        )
        raise typer.Exit(code=1) from err


def _detail(detail: Any) -> str:
    """A 422's list of field errors as `field: message` pairs; any other detail as it came."""
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail
        )
    return str(detail)


def submit(
    spec_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Architecture spec (JSON)."),
    seeds: str = typer.Option("0,1", help="Replicate seeds of the ladder, comma-separated."),
    sweep: bool = typer.Option(True, help="Queue the ladder's sweep too (--no-sweep: register only)."),
    tune: bool = typer.Option(False, help="Queue the LR tuning first; the sweep then waits for its η*."),
    server: str = SERVER,
) -> None:
    """Register a spec and queue its proxy ladder; prints the ids to follow it with `status`."""
    try:
        spec = json.loads(spec_file.read_text())
    except ValueError as err:
        typer.echo(f"error: {spec_file} is not JSON: {err}", err=True)
        raise typer.Exit(code=2) from err
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as err:
        typer.echo("error: --seeds: give whole numbers separated by commas, e.g. 0,1", err=True)
        raise typer.Exit(code=2) from err
    console = Console()
    with connected(server) as client:
        arch = client.create_architecture(spec)
        console.print(f"architecture [bold]{arch.name}[/] id {arch.id} (spec {arch.spec_hash[:12]})")
        if tune:
            tuning = client.create_tuning(arch.id)
            console.print(f"LR tuning {tuning.id} queued; waiting for η* before the ladder")
            tuning = client.wait_for_tuning(arch.id)
            console.print(f"η* = {tuning.lr_star:.3g}" if tuning.lr_star else f"tuning {tuning.status}")
        if sweep:
            queued = client.create_sweep(arch.id, seeds=seed_list)
            console.print(
                f"sweep {queued.id}: {len(queued.runs)} runs at lr {queued.lr:g} ({queued.lr_source})"
            )
            console.print(f"follow it: mupredict status {queued.id} --wait")


def status(
    sweep_id: int = typer.Argument(..., help="Sweep id (from submit or the API)."),
    wait: bool = typer.Option(False, help="Poll until every run has finished, with a progress bar."),
    server: str = SERVER,
) -> None:
    """A sweep's runs: status, progress, losses and the error of any that failed."""
    with connected(server) as client:
        current = client.wait_for(sweep_id) if wait else client.get_sweep(sweep_id)
    print_sweep(Console(), current)


def predict(
    architecture_id: int = typer.Argument(..., help="Architecture id."),
    n: float | None = TARGET_N,
    tokens: float | None = TOKENS,
    compute: float | None = COMPUTE,
    tokens_per_parameter: float | None = RATIO,
    width: int | None = typer.Option(None, help="Instead of --n: the target's width (N from its shape)."),
    depth: int | None = typer.Option(None, help="With --width: the target's depth (default the spec's)."),
    aspect_ratio: float | None = typer.Option(
        None, help="With --n: the target's width / depth (shape-corrected when shape matters)."
    ),
    interval: str = typer.Option("expected", help="expected (the expected loss) or run (a new run's)."),
    level: float = LEVEL,
    law: str | None = LAW,
    server: str = SERVER,
) -> None:
    """The predicted loss of one architecture at N or at a shape (--width, --depth), or at (N, D), or at
    a compute budget, with its interval and what it extrapolates over."""
    with connected(server) as client:
        p = client.predict(
            architecture_id=architecture_id,
            n_params=n,
            width=width,
            depth=depth,
            aspect_ratio=aspect_ratio,
            tokens=tokens,
            compute=compute,
            tokens_per_parameter=tokens_per_parameter,
            interval=interval,
            level=level,
            law=law,
        )
    console = Console()
    title = f"Predicted loss at N = {p.n_params:.3g} non-embedding parameters"
    if p.width is not None:
        title += f" (width {p.width}, depth {p.depth})"
    if p.tokens is not None:
        title += f", D = {p.tokens:.3g} tokens (C = {p.compute:.3g} FLOPs)"
    table = Table(title=title)
    for column in ("architecture", "loss", f"{level:.0%} interval ({p.interval})", "extrapolation", "law"):
        table.add_column(column, no_wrap=True)
    table.add_row(
        str(p.architecture_id),
        f"{p.predicted_loss:.4f}",
        f"[{p.lower:.4f}, {p.upper:.4f}]",
        f"{p.extrapolation_factor:.0f}×",
        p.law,
    )
    console.print(table)
    a = p.allocation
    if a is not None and a.n_params_lower is not None:
        console.print(
            f"compute-optimal split: N* {p.n_params:.3g} [{a.n_params_lower:.3g}, {a.n_params_upper:.3g}], "
            f"D* {p.tokens:.3g} [{a.tokens_lower:.3g}, {a.tokens_upper:.3g}], "
            f"{a.tokens_per_parameter:.3g} tokens per parameter"
        )
    for warning in p.warnings:
        console.print(f"[yellow]warning: {warning}[/]")


def compare(
    architecture_ids: list[int] = typer.Argument(..., help="Two or more architecture ids."),
    n: float | None = TARGET_N,
    tokens: float | None = TOKENS,
    compute: float | None = COMPUTE,
    tokens_per_parameter: float | None = RATIO,
    level: float = LEVEL,
    law: str | None = LAW,
    server: str = SERVER,
) -> None:
    """Rank architectures by expected loss at N (or (N, D), or equal compute), with P(best) paired by
    seed (the demo's table)."""
    from app.demo import print_table

    with connected(server) as client:
        result = client.compare(
            architecture_ids,
            n_params=n,
            level=level,
            tokens=tokens,
            compute=compute,
            tokens_per_parameter=tokens_per_parameter,
            law=law,
        )
    if compute is not None:
        title = f"Predicted loss at C = {compute:.3g} FLOPs, each design at its own N, D"
    else:
        title = f"Predicted loss at N = {n:.3g} non-embedding parameters"
        title += f", D = {tokens:.3g} tokens" if tokens is not None else ""
    print_table(Console(), result, title)


def upscale(
    run_id: int = typer.Argument(..., help="A succeeded run (from `status` or the API)."),
    width: int = typer.Option(..., help="The new width: a whole multiple (×2 or more) of the run's."),
    steps: int | None = typer.Option(None, help="Steps the widened model trains; default: the run's."),
    noise: float = typer.Option(1.0, help="× a fresh μP init added to the copies (0: the exact copy)."),
    server: str = SERVER,
) -> None:
    """Queue a continuation of a finished run, widened by μP upscaling (its weights and Adam state copied;
    the same function before `noise`); follow it with the API's GET /v1/runs/{id}."""
    with connected(server) as client:
        run = client.upscale_run(run_id, width, steps=steps, noise=noise)
    Console().print(
        f"run {run.id} ({run.status}): width {run.width}, upscaled from run {run.parent_run_id} "
        f"(noise {run.noise:g}), {run.steps} steps at lr {run.lr:g}"
    )


COMMANDS: tuple[Callable[..., None], ...] = (submit, status, predict, compare, upscale)


def print_sweep(console: Console, sweep: SweepPublic) -> None:
    c = sweep.counts
    table = Table(
        title=f"Sweep {sweep.id} of architecture {sweep.architecture_id}: {c.succeeded} done · "
        f"{c.running} running · {c.queued} queued · {c.failed} failed · {c.diverged} diverged"
    )
    for column in ("run", "width", "seed", "status", "progress", "val loss", "error"):
        table.add_column(column)
    for r in sweep.runs:
        total = r.progress_total or r.steps
        table.add_row(
            str(r.id),
            str(r.width),
            str(r.seed),
            r.status,
            f"{r.progress_step}/{total}",
            "—" if r.val_loss is None else f"{r.val_loss:.4f}",
            (r.error or "") if r.status in ("failed", "diverged") else "",
        )
    console.print(table)
