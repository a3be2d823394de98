"""Errors that every attempt would repeat fail the run at once, with their reason (issue 14): a missing or
too small corpus, a stored spec that no longer validates. Other errors are still retried. A real
in-process worker on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import architectures, queue
from app.db import make_engine
from app.models import Architecture, Run, RunStatus
from app.settings import Settings
from app.worker import Worker
from trainer import ArchitectureSpec


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MUPREDICT_CACHE_DIR", str(tmp_path / "cache"))
    return Settings(_env_file=None, database_url=fresh_db_url, max_attempts=3, data_dirs=[str(tmp_path)])


def tiny_spec(source: Path) -> dict[str, Any]:
    return {
        "name": "tiny",
        "n_layers": 1,
        "head_dim": 8,
        "context_length": 32,
        "proxy_widths": [16],
        "training": {"steps": 4, "batch_tokens": 256, "eval_tokens": 512},
        "dataset": {"source": str(source)},
    }


def enqueue(settings: Settings, spec: dict[str, Any]) -> int:
    """Queue one run of `spec` straight through the queue (the API's own checks are not under test)."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        arch, _ = architectures.register(session, ArchitectureSpec.model_validate(spec))
        queue.enqueue_sweep(session, arch, [16], [0], 4, depth=1, lr=0.01, lr_source="spec")
        session.commit()
        run_id = session.scalars(select(Run.id).where(Run.architecture_id == arch.id)).one()
    engine.dispose()
    return run_id


def stored_run(settings: Settings, run_id: int) -> Run:
    engine = make_engine(settings.database_url)
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(Run, run_id)
        assert run is not None
    engine.dispose()
    return run


@pytest.mark.parametrize(
    ("corpus", "reason"),
    [(None, "does not exist"), (b"too short", "fewer than context_length + 1 = 33")],
    ids=["missing", "too-small"],
)
def test_a_missing_or_too_small_corpus_fails_the_run_at_the_first_attempt(
    settings: Settings, tmp_path: Path, corpus: bytes | None, reason: str
) -> None:
    source = tmp_path / "corpus.txt"
    if corpus is not None:
        source.write_bytes(corpus)
    run_id = enqueue(settings, tiny_spec(source))
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(once=True) == 1  # claimed once, not 3×
    run = stored_run(settings, run_id)
    assert run.status == RunStatus.failed and run.attempts == 1
    assert run.error is not None and reason in run.error and "Traceback" not in run.error


def test_a_stored_spec_that_no_longer_validates_fails_its_run_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    run_id = enqueue(settings, tiny_spec(tmp_path / "unused.txt"))  # the spec fails before any data
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        spec = session.scalars(select(Architecture.spec)).one()
        spec = {**spec, "n_layers": 0}  # a hand edit
        session.execute(update(Architecture).values(spec=spec))
        session.commit()
    engine.dispose()
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(once=True) == 1
    run = stored_run(settings, run_id)
    assert run.status == RunStatus.failed and run.attempts == 1
    assert run.error is not None and run.error.startswith("n_layers: Input should be greater than")


def test_other_errors_are_still_retried(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flaky(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("trainer.train", flaky)
    run_id = enqueue(settings, tiny_spec(tmp_path / "unused.txt"))
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(max_runs=1) == 1
    run = stored_run(settings, run_id)
    assert (
        run.status == RunStatus.queued and run.attempts == 1 and "illegal memory access" in (run.error or "")
    )
