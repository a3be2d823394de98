"""Errors that every attempt would repeat fail the run at once, with their reason (issue 14): a missing or
too small corpus, a stored spec that no longer validates. Other errors are still retried. A real
in-process worker on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import Architecture, RunStatus
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import enqueue_one, one_run_spec, stored_run


@pytest.fixture
def settings(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MUPREDICT_CACHE_DIR", str(tmp_path / "cache"))
    return Settings(_env_file=None, database_url=fresh_db_url, max_attempts=3, data_dirs=[str(tmp_path)])


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
    run_id = enqueue_one(settings, one_run_spec(source))
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(once=True) == 1  # claimed once, not 3×
    run = stored_run(settings, run_id)
    assert run.status == RunStatus.failed and run.attempts == 1
    assert run.error is not None and reason in run.error and "Traceback" not in run.error


def test_a_stored_spec_that_no_longer_validates_fails_its_run_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    run_id = enqueue_one(settings, one_run_spec(tmp_path / "unused.txt"))  # the spec fails before any data
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
    run_id = enqueue_one(settings, one_run_spec(tmp_path / "unused.txt"))
    assert Worker(settings, device="cpu", poll_seconds=0.1).run(max_runs=1) == 1
    run = stored_run(settings, run_id)
    assert (
        run.status == RunStatus.queued and run.attempts == 1 and "illegal memory access" in (run.error or "")
    )
