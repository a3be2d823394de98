"""Retry backoff (issue 15 point 5): a run requeued after a failed attempt waits base × 2^(attempt − 1)
before any worker claims it again, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import queue
from app.models import Run, RunStatus, utcnow
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import enqueue_one, one_run_spec, stored_run
from tests.app.test_queue import RECIPE, _architecture


def test_the_backoff_doubles_per_attempt_up_to_an_hour() -> None:
    assert [queue.backoff(30, k).total_seconds() for k in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert queue.backoff(30, 20).total_seconds() == 3600
    assert queue.backoff(0, 5).total_seconds() == 0


def _claim(session: Session) -> queue.ClaimedRun | None:
    return queue.claim(session, "w", lease_seconds=30)


def test_a_failed_attempt_waits_out_its_backoff(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    claimed = _claim(db_session)
    assert claimed is not None
    before = utcnow()
    assert (
        queue.fail(db_session, claimed.id, "w", "boom", max_attempts=3, backoff_seconds=60)
        == RunStatus.queued
    )
    run = db_session.get(Run, claimed.id)
    assert run is not None and run.not_before is not None
    assert timedelta(seconds=59) < run.not_before - before < timedelta(seconds=61)
    assert _claim(db_session) is None  # queued, but not claimable yet
    db_session.execute(
        update(Run).where(Run.id == claimed.id).values(not_before=utcnow() - timedelta(seconds=1))
    )
    db_session.commit()
    again = _claim(db_session)
    assert again is not None and again.id == claimed.id and again.attempts == 2
    # The second failure waits twice as long.
    before = utcnow()
    queue.fail(db_session, claimed.id, "w", "boom", max_attempts=3, backoff_seconds=60)
    db_session.refresh(run)
    assert run.not_before is not None and timedelta(seconds=119) < run.not_before - before < timedelta(
        seconds=121
    )
    # A user's retry (after fixing the cause) starts over at once.
    db_session.execute(update(Run).where(Run.id == claimed.id).values(status=RunStatus.failed))
    db_session.commit()
    assert queue.retry(db_session, [claimed.id]) == [claimed.id]
    db_session.refresh(run)
    assert run.not_before is None and _claim(db_session) is not None


def test_a_reaped_run_waits_out_its_backoff(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    claimed = _claim(db_session)
    assert claimed is not None
    now = utcnow() + timedelta(seconds=60)  # the lease has expired by then
    assert queue.reap_expired(db_session, max_attempts=3, now=now, backoff_seconds=30) == 1
    run = db_session.get(Run, claimed.id)
    assert run is not None and run.status == RunStatus.queued
    assert run.not_before == now + timedelta(seconds=30)
    assert _claim(db_session) is None


def test_a_worker_does_not_retry_a_failing_run_at_once(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(_env_file=None, database_url=fresh_db_url, retry_backoff_seconds=60, max_attempts=3)
    run_id = enqueue_one(settings, one_run_spec("builtin"))

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the GPU fell off the bus")

    monkeypatch.setattr("trainer.train", crash)
    worker = Worker(settings, poll_seconds=0.05)
    assert worker.run(once=True) == 1  # one attempt, then the queue holds nothing claimable
    run = stored_run(settings, run_id)
    assert run.status == RunStatus.queued and run.attempts == 1 and "fell off the bus" in (run.error or "")
    assert run.not_before is not None and run.not_before > utcnow() + timedelta(seconds=50)
