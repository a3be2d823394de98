"""The queue's rules for runs that resume from another run's checkpoint (app.queue holds the generic
ones): token-horizon branches resume from their trunk, upscaled runs from their parent's final state
(trainer/upscale.py). A lost checkpoint sends its writer back to be trained again; runs whose parent
can no longer succeed fail with the reason; a trunk's checkpoint is pruned once every branch resuming
from it has finished, while a final state that runs are upscaled from is kept for more of them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, aliased

from app.models import FINISHED, Run, RunRole, RunStatus, utcnow
from app.queue import RunKey, enqueue_runs, fresh_attempts
from app.wakeup import announce

DEAD_TRUNK = (RunStatus.failed, RunStatus.diverged, RunStatus.cancelled)


def checkpoint_lost(
    session: Session, run_id: int, worker_id: str, error: str, max_attempts: int
) -> RunStatus | None:
    """The run's checkpoint (its trunk's, or the final state it is upscaled from) is missing or
    unreadable: the run waits again (or fails, after `max_attempts` claims) and the checkpoint is
    written again (nothing half-written: each file appears by rename). A trunk or an upscaled parent is
    queued to be trained again; a whole run's result stays as it is, and a trunk of the same recipe
    (its full length, checkpointed at its end) is queued to rewrite its final state instead, which the
    run now resumes from. Returns the run's new status (None: the lease was lost). Commits."""
    run = session.get(Run, run_id)
    if run is None or run.lease_owner != worker_id or run.status != RunStatus.running:
        session.rollback()
        return None
    parent = session.get(Run, run.parent_run_id) if run.parent_run_id is not None else None
    now = utcnow()
    final = run.attempts >= max_attempts
    run.status = RunStatus.failed if final else RunStatus.queued
    run.lease_owner = run.lease_expires_at = None
    run.finished_at = now if final else None
    run.progress_step = 0
    run.updated_at = now
    writer = run.parent_run_id
    if not final:
        if parent is not None and parent.role == RunRole.run:
            writer = run.parent_run_id = _rewrite_final_state(session, parent)
        else:
            session.execute(
                update(Run)
                .where(Run.id == writer, Run.status.in_(FINISHED))
                .values(
                    **fresh_attempts(),
                    error=f"trained again: run {run_id} found its checkpoint unusable ({error})"[-10_000:],
                )
            )
        announce(session)
    run.error = f"{error}; run {writer} is trained again to rewrite it"[-10_000:]
    session.commit()
    return run.status


def final_state_source(session: Session, parent: Run) -> int:
    """The run whose final checkpoint holds `parent`'s final state: a trunk that rewrote it for an
    earlier upscaled run (unless that trunk failed), else `parent` itself."""
    rewritten = session.scalar(
        select(Run.id).where(
            Run.architecture_id == parent.architecture_id,
            Run.schedule == _final_state_key(parent).schedule,
            Run.width == parent.width,
            Run.depth == parent.depth,
            Run.seed == parent.seed,
            Run.data_seed == parent.data_seed,
            Run.steps == parent.steps,
            Run.lr == parent.lr,
            Run.status.not_in(DEAD_TRUNK),
        )
    )
    return parent.id if rewritten is None else int(rewritten)


def _final_state_key(whole: Run) -> RunKey:
    return RunKey(
        whole.width,
        whole.depth,
        whole.seed,
        whole.steps,
        whole.lr,
        whole.data_seed,
        RunRole.trunk,
        whole.warmup_steps,
        stop_step=whole.steps,
    )


def _rewrite_final_state(session: Session, whole: Run) -> int:
    """A trunk with `whole`'s recipe that trains its full length and checkpoints its end (the same
    schedule: a trunk's warmup is the spec's fraction when not fixed), queued unless it exists; its id."""
    key = _final_state_key(whole)
    trunk_id = enqueue_runs(session, whole.architecture_id, [key])[key]
    session.execute(
        update(Run).where(Run.id == trunk_id, Run.status.in_(FINISHED)).values(**fresh_attempts())
    )
    return trunk_id


def settle_orphans(session: Session) -> int:
    """Fail the queued runs whose parent (a branch's trunk, an upscaled run's source) failed, diverged
    or was cancelled (they could never be claimed), with the reason; a retry queues the parent again.
    Commits."""
    parent = aliased(Run)
    dead = select(parent.id).where(parent.status.in_(DEAD_TRUNK))
    now = utcnow()
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run)
        .where(Run.status == RunStatus.queued, Run.parent_run_id.in_(dead))
        .values(
            status=RunStatus.failed,
            error="the run it resumes from (its trunk, or the run it is upscaled from) failed, diverged or "
            "was cancelled, so its checkpoint will not be written: retry this run to train that one again",
            finished_at=now,
            updated_at=now,
        )
    )
    session.commit()
    return int(result.rowcount)


def settled_checkpoints(session: Session, trunk_id: int) -> tuple[list[int], bool]:
    """The run's checkpoint steps whose every branch has finished (prunable), and whether that is all
    of them. A checkpoint an upscaled run resumes from is never prunable: more may start from it."""
    rows = session.execute(
        select(Run.resume_step, Run.status, Run.role).where(
            Run.parent_run_id == trunk_id, Run.role.in_([RunRole.branch, RunRole.upscaled])
        )
    ).all()
    waiting = {step for step, status, role in rows if status not in FINISHED or role == RunRole.upscaled}
    steps = sorted({int(step) for step, _, _ in rows if step is not None and step not in waiting})
    return steps, not waiting
