"""The queue's token-horizon rules (app.queue holds the generic ones): a branch whose checkpoint is
lost sends its trunk back to be trained again; branches of a trunk that can no longer succeed fail with
the reason; a checkpoint is pruned once every branch resuming from it has finished."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, aliased

from app.models import FINISHED, Run, RunRole, RunStatus, utcnow
from app.queue import fresh_attempts
from app.wakeup import announce

DEAD_TRUNK = (RunStatus.failed, RunStatus.diverged, RunStatus.cancelled)


def checkpoint_lost(
    session: Session, branch_id: int, worker_id: str, error: str, max_attempts: int
) -> RunStatus | None:
    """The branch's checkpoint is missing or unreadable: the branch waits again (or fails, after
    `max_attempts` claims) and its trunk is queued to be trained again, which rewrites the checkpoints
    (nothing half-written: each file appears by rename). Returns the branch's new status (None: the
    lease was lost). Commits."""
    branch = session.get(Run, branch_id)
    if branch is None or branch.lease_owner != worker_id or branch.status != RunStatus.running:
        session.rollback()
        return None
    now = utcnow()
    final = branch.attempts >= max_attempts
    branch.status = RunStatus.failed if final else RunStatus.queued
    branch.error = f"{error}; its trunk (run {branch.parent_run_id}) is trained again to rewrite it"[-10_000:]
    branch.lease_owner = branch.lease_expires_at = None
    branch.finished_at = now if final else None
    branch.progress_step = 0
    branch.updated_at = now
    if not final:
        session.execute(
            update(Run)
            .where(Run.id == branch.parent_run_id, Run.status.in_(FINISHED))
            .values(
                **fresh_attempts(),
                error=f"trained again: branch {branch_id} found its checkpoint unusable ({error})"[-10_000:],
            )
        )
        announce(session)
    session.commit()
    return branch.status


def settle_orphans(session: Session) -> int:
    """Fail the queued branches whose trunk failed, diverged or was cancelled (they could never be
    claimed), with the reason; a retry of the branch queues its trunk again. Commits."""
    trunk = aliased(Run)
    dead = select(trunk.id).where(trunk.role == RunRole.trunk, trunk.status.in_(DEAD_TRUNK))
    now = utcnow()
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Run)
        .where(Run.status == RunStatus.queued, Run.parent_run_id.in_(dead))
        .values(
            status=RunStatus.failed,
            error="its trunk run failed, diverged or was cancelled, so its checkpoint will not be written: "
            "retry this run to train the trunk again",
            finished_at=now,
            updated_at=now,
        )
    )
    session.commit()
    return int(result.rowcount)


def settled_checkpoints(session: Session, trunk_id: int) -> tuple[list[int], bool]:
    """The trunk's checkpoint steps whose every branch has finished (prunable), and whether that is all
    of them."""
    rows = session.execute(
        select(Run.resume_step, Run.status).where(Run.parent_run_id == trunk_id, Run.role == RunRole.branch)
    ).all()
    waiting = {step for step, status in rows if status not in FINISHED}
    steps = sorted({int(step) for step, _ in rows if step is not None and step not in waiting})
    return steps, not waiting
