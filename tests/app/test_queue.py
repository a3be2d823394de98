"""The queue's guarantees, one conditional update at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import queue
from app.models import Architecture, Run, RunMetric, RunStatus, Sweep, utcnow
from trainer.result import RunResult

# A finished run as the worker stores it: built by the trainer's own dataclass, so a field added to
# RunResult must be given here too.
RESULT = RunResult(
    status="succeeded",
    reason=None,
    width=32,
    seed=0,
    data_seed=0,
    lr=0.01,
    steps=10,
    final_train_loss=2.5,
    val_loss=2.6,
    n_params=1000,
    n_params_non_embedding=800,
    tokens=5000,
    flops=1e9,
    wall_seconds=1.0,
    tokens_per_second=5000.0,
    mfu=None,
    device="cpu",
    corpus_fingerprint="f" * 64,
    tokenizer="byte",
    code_version="test",
    loss_curve=[(1, 5.0), (5, 3.0), (10, 2.5)],
).to_dict()


RECIPE = {"depth": 2, "lr": 0.01, "lr_source": "spec"}


def _architecture(session: Session, name: str = "a") -> Architecture:
    arch = Architecture(name=name, spec_hash=name.ljust(64, "0"), spec={"name": name})
    session.add(arch)
    session.flush()
    return arch


def test_enqueue_is_idempotent(db_session: Session) -> None:
    arch = _architecture(db_session)
    sweep, created = queue.enqueue_sweep(db_session, arch, [64, 32, 32], [0, 1], steps=10, **RECIPE)
    assert created and sweep.widths == [32, 64] and sweep.seeds == [0, 1]
    again, created_again = queue.enqueue_sweep(db_session, arch, [32, 64], [1, 0], steps=10, **RECIPE)
    assert not created_again and again.id == sweep.id
    assert db_session.scalar(select(func.count()).select_from(Run)) == 4
    # An overlapping sweep reuses the runs it shares and adds only the new width.
    bigger, _ = queue.enqueue_sweep(db_session, arch, [32, 64, 128], [0, 1], steps=10, **RECIPE)
    assert bigger.id != sweep.id
    assert db_session.scalar(select(func.count()).select_from(Run)) == 6
    assert len(bigger.runs) == 6
    assert db_session.scalar(select(func.count()).select_from(Sweep)) == 2


def test_claim_takes_oldest_and_leases(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32, 64], [0], steps=10, **RECIPE)
    first = queue.claim(db_session, "w1", lease_seconds=30)
    second = queue.claim(db_session, "w2", lease_seconds=30)
    assert first is not None and second is not None and first.id != second.id
    assert first.spec == {"name": "a"} and first.attempts == 1
    assert queue.claim(db_session, "w3", lease_seconds=30) is None
    run = db_session.get(Run, first.id)
    assert run is not None
    db_session.refresh(run)
    assert run.status == RunStatus.running and run.lease_owner == "w1"
    assert run.lease_expires_at is not None and run.lease_expires_at > utcnow()


def test_only_the_lease_holder_writes(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    claimed = queue.claim(db_session, "holder", lease_seconds=30)
    assert claimed is not None
    assert not queue.heartbeat(db_session, claimed.id, "zombie", 30, 5, 10, 3.0)
    assert not queue.complete(db_session, claimed.id, "zombie", RESULT)
    assert queue.heartbeat(db_session, claimed.id, "holder", 30, 5, 10, 3.0, [(5, 3.0)])
    assert queue.complete(db_session, claimed.id, "holder", RESULT)
    run = db_session.get(Run, claimed.id)
    assert run is not None
    db_session.refresh(run)
    assert run.status == RunStatus.succeeded and run.val_loss == 2.6 and run.lease_owner is None
    curve = db_session.scalars(select(RunMetric).where(RunMetric.run_id == claimed.id)).all()
    assert [(m.step, m.train_loss) for m in curve] == [(1, 5.0), (5, 3.0), (10, 2.5)]
    # A repeated write of the same result (a retry after a dropped connection) is recognised as done.
    assert queue.complete(db_session, claimed.id, "holder", RESULT)


def test_zombie_write_refused_after_reap(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    zombie = queue.claim(db_session, "zombie", lease_seconds=30)
    assert zombie is not None
    assert queue.reap_expired(db_session, max_attempts=3, now=utcnow() + timedelta(seconds=60)) == 1
    fresh = queue.claim(db_session, "fresh", lease_seconds=30)
    assert fresh is not None and fresh.id == zombie.id and fresh.attempts == 2
    assert not queue.complete(db_session, zombie.id, "zombie", RESULT)
    assert queue.complete(db_session, fresh.id, "fresh", RESULT)


def test_reaper_fails_after_max_attempts_and_fail_keeps_error(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32, 64], [0], steps=10, **RECIPE)
    later = utcnow() + timedelta(seconds=60)
    for _ in range(2):
        assert queue.claim(db_session, "w", lease_seconds=30) is not None
        assert queue.claim(db_session, "w", lease_seconds=30) is not None
        queue.reap_expired(db_session, max_attempts=2, now=later)
    runs = db_session.scalars(select(Run)).all()
    for run in runs:
        db_session.refresh(run)
    assert {r.status for r in runs} == {RunStatus.failed}
    assert all("attempt 2 of 2" in (r.error or "") for r in runs)


def test_crash_requeues_then_fails(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    claimed = queue.claim(db_session, "w", lease_seconds=30)
    assert claimed is not None
    assert queue.fail(db_session, claimed.id, "w", "boom 1", max_attempts=2) == RunStatus.queued
    claimed = queue.claim(db_session, "w", lease_seconds=30)
    assert claimed is not None
    assert queue.fail(db_session, claimed.id, "w", "boom 2", max_attempts=2) == RunStatus.failed
    run = db_session.get(Run, claimed.id)
    assert run is not None
    db_session.refresh(run)
    assert run.status == RunStatus.failed and run.error == "boom 2"


def test_release_hands_back_without_spending_an_attempt(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    claimed = queue.claim(db_session, "w", lease_seconds=30)
    assert claimed is not None
    assert queue.release(db_session, claimed.id, "w")
    again = queue.claim(db_session, "w2", lease_seconds=30)
    assert again is not None and again.id == claimed.id and again.attempts == 1
