"""The one `mupredict` command line: serve, worker, demo, train, fit, migrate."""

from __future__ import annotations

import typer

cli = typer.Typer(
    name="mupredict",
    help="Predict the loss of a transformer architecture at N parameters from small μP proxies.",
    no_args_is_help=True,
    add_completion=False,
)


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
    workers: int = typer.Option(1, help="Uvicorn worker processes."),
) -> None:
    """Serve the HTTP API and the dashboard (migrates the database first when auto-migrate is on)."""
    import uvicorn

    uvicorn.run("app.api:create_app", factory=True, host=host, port=port, workers=workers)


@cli.command()
def worker(
    device: str = typer.Option("auto", help="Training device: auto, cpu, cuda or cuda:N."),
    once: bool = typer.Option(False, "--once", help="Exit when the queue is empty instead of polling."),
    max_runs: int | None = typer.Option(None, help="Exit after this many runs."),
    worker_id: str | None = typer.Option(None, help="Lease owner name (default host:pid:random)."),
    poll_seconds: float = typer.Option(2.0, help="Wait between claims while the queue is empty."),
) -> None:
    """Claim queued proxy runs from the database, train them, store the results."""
    import logging

    from app.settings import get_settings
    from app.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pool_worker = Worker(get_settings(), device=device, worker_id=worker_id, poll_seconds=poll_seconds)
    pool_worker.install_signal_handlers()
    done = pool_worker.run(once=once, max_runs=max_runs)
    typer.echo(f"worker {pool_worker.worker_id}: {done} run(s) processed")


@cli.command()
def demo(
    port: int = typer.Option(8000, help="Port of the API and dashboard."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    target_factor: float = typer.Option(30.0, min=10.0, help="Predict at this multiple of the largest proxy."),
    serve: bool = typer.Option(True, help="Keep serving the dashboard after printing the prediction."),
) -> None:
    """Train two candidate designs' proxies on CPU, fit, print the winner, serve the dashboard."""
    from app.demo import run_demo
    from app.settings import get_settings

    run_demo(get_settings(), host=host, port=port, target_factor=target_factor, serve=serve)


def main() -> None:
    cli()
