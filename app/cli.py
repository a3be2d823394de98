"""The one `mupredict` command line: serve, worker, demo, train, fit, migrate, data prepare
(app/cli_data.py), and the client commands submit, status, predict, compare and upscale
(app/cli_client.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

cli = typer.Typer(
    name="mupredict",
    help="Predict the loss of a transformer architecture at N parameters from small μP proxies.",
    no_args_is_help=True,
    add_completion=False,
)


def _client_commands() -> tuple[Callable[..., None], ...]:
    from app.cli_client import COMMANDS

    return COMMANDS


@cli.command()
def migrate(
    revision: str = typer.Argument("head", help="Target revision (`head`, `base`, or an id)."),
    database_url: str | None = typer.Option(None, help="Overrides MUPREDICT_DATABASE_URL."),
) -> None:
    """Upgrade (or downgrade) the database schema."""
    from app import migrate as migrations
    from app.db import make_engine
    from app.settings import get_settings

    engine = make_engine(database_url or get_settings().database_url)
    try:
        current = migrations.current_revision(engine)
        if revision == "base" or (current is not None and revision not in ("head", current)):
            migrations.downgrade(engine, revision)
        else:
            migrations.upgrade(engine, revision)
        typer.echo(f"schema at {migrations.current_revision(engine) or 'base'} (was {current or 'base'})")
    finally:
        engine.dispose()


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 in a container)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Uvicorn worker processes (one per core for a busy API)."),
    access_log: bool = typer.Option(
        True, help="Log every request (off where a proxy in front already logs them: it costs throughput)."
    ),
) -> None:
    """Serve the HTTP API and the dashboard (migrates the database first when auto-migrate is on)."""
    import uvicorn

    uvicorn.run(
        "app.api:create_app", factory=True, host=host, port=port, workers=workers, access_log=access_log
    )


@cli.command()
def worker(
    device: str | None = typer.Option(
        None, help="Training device: auto, cpu, cuda or cuda:N (default: MUPREDICT_DEVICE, else auto)."
    ),
    gpus: str | None = typer.Option(
        None,
        help="One worker process per GPU: `all` or indices such as 0,1,3. Crashed workers are restarted; "
        "SIGTERM stops them all, each handing its run back.",
    ),
    once: bool = typer.Option(False, "--once", help="Exit when the queue is empty instead of polling."),
    max_runs: int | None = typer.Option(None, help="Exit after this many runs."),
    worker_id: str | None = typer.Option(None, help="Lease owner name (default host:pid:random)."),
    poll_seconds: float = typer.Option(2.0, help="Wait between claims while the queue is empty."),
) -> None:
    """Claim queued proxy runs from the database, train them, store the results."""
    import logging

    import trainer
    from app.settings import get_settings
    from app.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if gpus is not None:
        _supervise(gpus, device, once=once, max_runs=max_runs, worker_id=worker_id, poll_seconds=poll_seconds)
        return
    settings = get_settings()
    try:  # a worker that cannot use its device would fail every run it claims: refuse to start
        trainer.resolve_device(device or settings.device)
    except trainer.DeviceUnavailable as err:
        typer.echo(f"error: --device: {err}", err=True)
        raise typer.Exit(code=2) from err
    pool_worker = Worker(settings, device=device, worker_id=worker_id, poll_seconds=poll_seconds)
    pool_worker.install_signal_handlers()
    done = pool_worker.run(once=once, max_runs=max_runs)
    typer.echo(f"worker {pool_worker.worker_id}: {done} run(s) processed")


def _supervise(
    gpus: str,
    device: str | None,
    *,
    once: bool,
    max_runs: int | None,
    worker_id: str | None,
    poll_seconds: float,
) -> None:
    """`worker --gpus`: one child worker per GPU under app.supervisor."""
    import os

    import torch

    from app.supervisor import NoGpus, Supervisor, gpu_slots, parse_gpus

    if device is not None:
        typer.echo("error: give --gpus or --device, not both (--gpus gives each worker its GPU)", err=True)
        raise typer.Exit(code=2)
    try:
        indices = parse_gpus(gpus, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    except NoGpus as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err
    args = ["--poll-seconds", str(poll_seconds), *(["--once"] if once else [])]
    args += ["--max-runs", str(max_runs)] if max_runs is not None else []
    supervisor = Supervisor(gpu_slots(indices, os.environ.get("CUDA_VISIBLE_DEVICES")), args, worker_id)
    supervisor.install_signal_handlers()
    restarts = supervisor.run()
    typer.echo(f"supervisor: {len(indices)} worker(s) stopped, {restarts} restart(s)")
    if supervisor.gave_up:
        typer.echo(f"error: gave up on {', '.join(supervisor.gave_up)} after repeated crashes", err=True)
        raise typer.Exit(code=1)


@cli.command()
def demo(
    port: int = typer.Option(8000, help="Port of the API and dashboard."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    target_factor: float = typer.Option(
        30.0, min=10.0, help="Predict at this multiple of the largest proxy."
    ),
    serve: bool = typer.Option(True, help="Keep serving the dashboard after printing the prediction."),
    workers: int | None = typer.Option(
        None, min=1, help="Local worker processes, one torch thread each (default: one per core, up to 4)."
    ),
) -> None:
    """Tune two candidate designs' LR, train their proxies at η* on CPU, fit, print the winner, serve
    the dashboard."""
    from app.demo import run_demo
    from app.settings import get_settings

    run_demo(get_settings(), host=host, port=port, target_factor=target_factor, serve=serve, workers=workers)


@cli.command()
def fit(
    csv_file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="CSV with columns n_params (or N) and loss; D for chinchilla and kaplan; C (not N) for compute.",
    ),
    law: str = typer.Option(
        "mu_scaling", help="mu_scaling, power, kaplan_slice (needs --gamma), chinchilla, kaplan or compute."
    ),
    at: float | None = typer.Option(None, help="Predict the loss at this N (C for the compute law)."),
    tokens: float | None = typer.Option(None, help="D at the prediction ((N, D) laws: chinchilla, kaplan)."),
    level: float = typer.Option(0.9, help="Central probability of the interval."),
    interval: str = typer.Option(
        "expected", help="expected (the expected loss at --at) or run (what --seeds new runs will show)."
    ),
    seeds: int = typer.Option(1, min=1, help="With --interval run: how many new runs are averaged."),
    method: str = typer.Option(
        "delta", help="delta (linearised) or profile (profile likelihood) for the parameters' part."
    ),
    loss: str = typer.Option("lsq", help="lsq (least squares on log loss) or huber (δ = 1.345 σ̂)."),
    n_bootstrap: int = typer.Option(0, help="Bootstrap resamples for the standard errors (0: none)."),
    gamma: float | None = typer.Option(
        None,
        help="kaplan_slice's fixed outer power: the gamma of a kaplan fit of the same model's (N, D) grid.",
    ),
    gamma_sd: float = typer.Option(0.0, help="That fit's standard error of gamma (enters every interval)."),
    gamma_dof: int = typer.Option(0, help="That fit's degrees of freedom (its sigma_dof), with --gamma-sd."),
) -> None:
    """Fit a scaling law to a CSV of (N, loss) points; print the report and a prediction.

    An optional `seed` column labels replicate runs (a seed shared across widths is paired)."""
    import csv

    import predictor
    from predictor.laws import LAWS

    with csv_file.open(newline="") as f:
        rows = [{k.strip().lower(): v for k, v in row.items() if k} for row in csv.DictReader(f)]

    def column(*names: str) -> list[float] | None:
        for name in names:
            if rows and name.lower() in rows[0]:
                return [float(row[name.lower()]) for row in rows]
        return None

    try:
        # The compute law fits loss against training FLOPs: N in its place would fit, silently, the wrong
        # question, so only a compute column is taken.
        n = column("C", "compute", "flops") if law == "compute" else column("n_params", "N")
        losses = column("loss")
        d = column("D", "tokens")
        in_n_and_d = law in LAWS and LAWS[law].in_tokens
        if n is None or losses is None or (in_n_and_d and d is None):
            needed = (
                "C (or compute, flops: training FLOPs), loss"
                if law == "compute"
                else "n_params or N, D or tokens, loss"
                if in_n_and_d
                else "n_params or N, loss"
            )
            raise ValueError(f"{csv_file.name} needs columns named {needed}")
        x: object = list(zip(n, d, strict=True)) if in_n_and_d and d is not None else n
        weights = column("weight", "weights")
        seed_labels = column("seed")
        labels = None if seed_labels is None else [int(s) for s in seed_labels]
        result = predictor.fit(
            x,
            losses,
            law=law,
            seeds=labels,
            weights=weights,
            loss=loss,
            n_bootstrap=n_bootstrap,
            gamma=gamma,
            gamma_sd=gamma_sd,
            gamma_dof=gamma_dof,
        )
        typer.echo(result.report())
        if at is not None:
            if in_n_and_d and tokens is None:
                raise ValueError(f"{law} predicts at (N, D): give --tokens with --at")
            query = [at, tokens] if in_n_and_d else at
            pred = result.predict(query, level=level, interval=interval, seeds=seeds, method=method)
            question = "the expected loss" if interval == "expected" else f"{seeds} new run(s), averaged"
            typer.echo("[[Prediction]]")
            typer.echo(
                f"    loss at {at:.4g} = {pred.mean:.4f}, {level:.0%} interval for {question} "
                f"[{pred.lower:.4f}, {pred.upper:.4f}], {pred.extrapolation_factor:.3g}× the largest fitted N"
            )
            for warning in pred.warnings:
                typer.echo(f"    warning: {warning}")
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err


@cli.command()
def train(
    spec_file: Path = typer.Option(
        ..., "--spec", exists=True, dir_okay=False, help="Architecture spec JSON (see examples/specs/)."
    ),
    width: int = typer.Option(..., "--width", help="Proxy width (d_model), a multiple of head_dim."),
    seed: int | None = typer.Option(None, help="Overrides training.seed."),
    steps: int | None = typer.Option(None, help="Overrides training.steps."),
    lr: float | None = typer.Option(
        None, help="Overrides training.lr (the base LR; μP scales it per group)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    compile: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the model (default: on for CUDA, off on a CPU)."
    ),
    micro_batch: int | None = typer.Option(
        None,
        "--micro-batch",
        min=1,
        help="Sequences per forward/backward; must divide the batch (default: as many as the GPU holds).",
    ),
) -> None:
    """Train one proxy of a spec at one width; show progress, print the RunResult as JSON."""
    import json

    from pydantic import ValidationError
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    import trainer

    try:
        spec = trainer.ArchitectureSpec.model_validate(json.loads(spec_file.read_text()))
    except (ValidationError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        typer.echo(f"error: {spec_file} is not a valid spec: {err}", err=True)
        raise typer.Exit(code=2) from err
    try:
        spec.validate_width(width)
    except ValueError as err:
        typer.echo(f"error: --width: {err}", err=True)
        raise typer.Exit(code=2) from err
    try:
        trainer.resolve_device(device)
    except trainer.DeviceUnavailable as err:
        typer.echo(f"error: --device: {err}", err=True)
        raise typer.Exit(code=2) from err
    from app.settings import Settings

    # Any local file may be read (this is the user's own machine); the corpus cache is the settings'.
    cache = Settings().cache_dir
    access = trainer.CorpusAccess(cache_dir=cache) if cache is not None else None
    total = steps if steps is not None else spec.training.steps
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps · loss {task.fields[loss]} · {task.fields[speed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"{spec.name} @ width {width}", total=total, loss="…", speed="")

        def report(p: trainer.Progress) -> None:
            bar.update(
                task, completed=p.step, loss=f"{p.loss:.3f}", speed=f"{p.tokens_per_second:,.0f} tok/s"
            )

        try:
            result = trainer.train(
                spec,
                width,
                seed=seed,
                steps=steps,
                lr=lr,
                device=device,
                progress=report,
                compile=compile,
                micro_batch=micro_batch,
                corpus_access=access,
            )
        except (trainer.CorpusError, ValueError) as err:
            bar.stop()
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
    typer.echo(json.dumps(result.to_dict(), indent=2))
    if result.status != "succeeded":
        raise typer.Exit(code=1)


def _data_commands() -> typer.Typer:
    from app.cli_data import data

    return data


cli.add_typer(_data_commands(), name="data")

# The client commands: submit, status, predict, compare, upscale (app/cli_client.py).
for _command in _client_commands():
    cli.command()(_command)


def main() -> None:
    cli()


if __name__ == "__main__":  # `python -m app.cli`, as the demo starts its workers
    main()
