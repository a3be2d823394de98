"""The run queue: idempotent enqueue, atomic claims, leases kept by heartbeats, guarded result writes.

Every state change is one conditional UPDATE, so the database — not the workers — decides who holds a
run: a claim takes the oldest queued run (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single-writer
lock on SQLite); progress and result writes match on the lease owner, so a worker that lost its lease
(a zombie) has its late writes refused; the reaper requeues expired leases until `max_attempts`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import CursorResult, and_, case, delete, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from app.models import Architecture, Run, RunMetric, RunRole, RunStatus, Sweep, SweepRun, utcnow
from app.run_record import CURVE, result_values
from app.wakeup import announce
from trainer.horizon import HorizonPlan
from trainer.shapes import ladder_shapes

log = logging.getLogger(__name__)


def _changed(session: Session, statement: Any) -> int:
    """Rows an UPDATE or DELETE changed: the conditional writes below decide by this count."""
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return int(result.rowcount)


@dataclass(frozen=True)
class ClaimedRun:
    id: int
    architecture_id: int
    spec: dict[str, Any]
    width: int
    depth: int
    seed: int
    data_seed: int
    steps: int
    lr: float
    attempts: int
    role: RunRole = RunRole.run
    parent_run_id: int | None = None
    warmup_steps: int | None = None
    stop_step: int | None = None  # a trunk's last step
    resume_step: int | None = None  # the trunk step a branch resumes from; an upscaled run's parent's end
    noise: float | None = None  # an upscaled run's upscaling noise
    checkpoint_steps: tuple[int, ...] = ()  # where runs that resume from this one (branches, upscaled) start


@dataclass(frozen=True)
class RunKey:
    """What makes a run: its shape, seeds, budget, LR and schedule (one row per key and architecture)."""

    width: int
    depth: int
    seed: int
    steps: int
    lr: float
    data_seed: int | None = None  # None: the batch order is the init seed's
    role: RunRole = RunRole.run
    warmup_steps: int | None = None  # None: the spec's warmup_fraction of `steps`
    stop_step: int | None = None
    resume_step: int | None = None
    noise: float | None = None  # upscaled: the noise of the widening
    source: int | None = None  # upscaled: the run whose final state it widens (part of its identity)

    @property
    def order(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def schedule(self) -> str:
        """The schedule's part of the identity ("" for a whole run), the `schedule` column."""
        if self.role == RunRole.trunk:
            return f"trunk warmup={self.warmup_steps} stop={self.stop_step}"
        if self.role == RunRole.branch:
            return f"branch warmup={self.warmup_steps} from={self.resume_step}"
        if self.role == RunRole.upscaled:
            return f"upscaled from=run-{self.source} noise={self.noise:g}"
        return ""


def insert_ignoring_duplicates(session: Session, table: Any, rows: list[dict[str, Any]]) -> int:
    """INSERT … ON CONFLICT DO NOTHING: two concurrent identical requests still create each row once.

    Returns the number of rows inserted, counted from RETURNING: cursor.rowcount is not reliable for
    this statement across drivers (psycopg 3 under SQLAlchemy 2.1 reports -1).
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(rows).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(rows).on_conflict_do_nothing()
    else:
        stmt = insert(table).values(rows)
    primary_key = list(table.primary_key.columns)
    return len(session.execute(stmt.returning(*primary_key)).all())


def enqueue_runs(
    session: Session,
    architecture_id: int,
    keys: Sequence[RunKey],
    parents: Mapping[RunKey, int] | None = None,
) -> dict[RunKey, int]:
    """Queue a run per key unless it exists (whatever its status); returns every key's run id. A key in
    `parents` is a branch of that trunk run: claimable once the trunk has succeeded."""
    parents = parents or {}
    now = utcnow()
    keys = list(dict.fromkeys(keys))
    insert_ignoring_duplicates(
        session,
        Run.__table__,
        [
            {
                "architecture_id": architecture_id,
                "width": k.width,
                "depth": k.depth,
                "seed": k.seed,
                "data_seed": k.order,
                "steps": k.steps,
                "lr": k.lr,
                "role": k.role.value,
                "parent_run_id": parents.get(k, k.source),
                "warmup_steps": k.warmup_steps,
                "stop_step": k.stop_step,
                "resume_step": k.resume_step,
                "noise": k.noise,
                "schedule": k.schedule,
                "status": RunStatus.queued.value,
                "attempts": 0,
                "progress_step": 0,
                "progress_total": k.stop_step or k.steps,
                "created_at": now,
                "updated_at": now,
            }
            for k in keys
        ],
    )
    if not keys:
        return {}
    announce(session)
    rows = session.execute(
        select(Run.id, Run.width, Run.depth, Run.seed, Run.steps, Run.lr, Run.data_seed, Run.schedule).where(
            Run.architecture_id == architecture_id,
            Run.width.in_({k.width for k in keys}),
            Run.depth.in_({k.depth for k in keys}),
            Run.seed.in_({k.seed for k in keys}),
            Run.data_seed.in_({k.order for k in keys}),
            Run.steps.in_({k.steps for k in keys}),
            Run.lr.in_({k.lr for k in keys}),
            Run.schedule.in_({k.schedule for k in keys}),
        )
    ).all()
    found = {(w, d, s, n, lr, order, sched): run_id for run_id, w, d, s, n, lr, order, sched in rows}
    return {k: found[(k.width, k.depth, k.seed, k.steps, k.lr, k.order, k.schedule)] for k in keys}


def enqueue_sweep(
    session: Session,
    architecture: Architecture,
    widths: list[int],
    seeds: list[int],
    steps: int,
    *,
    depth: int,
    lr: float,
    lr_source: str,
    data_seed: int | None = None,
    horizons: HorizonPlan | None = None,
    upscale_noise: float | None = None,
    depths: list[int] | None = None,
    aspect_ratio: float | None = None,
) -> tuple[Sweep, bool]:
    """One run per (width, seed) at `steps`, `depth` and `lr` (all on batch order `data_seed` when given,
    else each on its seed's); returns the sweep and whether anything new was created. A ladder over
    depth trains every width at each of `depths`, or each width at width / `aspect_ratio`
    (trainer/shapes.py), instead of at `depth`. With `horizons`,
    each (width, seed) is instead a trunk and a branch per token budget (trainer/horizon.py), and
    `steps` is the longest budget's. With `upscale_noise` (a warm-started ladder) the smallest width
    trains from scratch and each larger one is upscaled from the previous width's run of its seed.

    The same request twice creates nothing new: runs are unique per (architecture, shape, seed, steps,
    LR, schedule) and an identical sweep is returned as it is.
    """
    widths, seeds = sorted(set(widths)), sorted(set(seeds))
    budgets = None if horizons is None else [s * horizons.batch_tokens for s in horizons.steps]
    existing = session.scalars(
        select(Sweep).where(
            Sweep.architecture_id == architecture.id,
            Sweep.steps == steps,
            Sweep.lr == lr,
            Sweep.data_seed.is_(None) if data_seed is None else Sweep.data_seed == data_seed,
        )
    ).all()
    warm_start = None if upscale_noise is None else "upscale"
    for sweep in existing:
        same = sweep.widths == widths and sweep.seeds == seeds and (sweep.token_budgets or None) == budgets
        same = same and sweep.depths == depths and sweep.aspect_ratio == aspect_ratio
        if same and sweep.warm_start == warm_start and sweep.noise == upscale_noise:
            return sweep, False
    if upscale_noise is not None:
        run_ids = _enqueue_rungs(
            session, architecture.id, widths, seeds, steps, depth, lr, data_seed, upscale_noise
        )
    elif horizons is None:
        shapes = ladder_shapes(widths, depths or [depth], aspect_ratio)
        keys = [RunKey(w, d, s, steps, lr, data_seed) for w, d in shapes for s in seeds]
        run_ids = list(enqueue_runs(session, architecture.id, keys).values())
    else:
        run_ids = _enqueue_horizons(session, architecture.id, widths, seeds, depth, lr, data_seed, horizons)
    sweep = Sweep(
        architecture_id=architecture.id,
        widths=widths,
        seeds=seeds,
        steps=steps,
        lr=lr,
        lr_source=lr_source,
        data_seed=data_seed,
        token_budgets=budgets,
        warm_start=warm_start,
        noise=upscale_noise,
        depths=depths,
        aspect_ratio=aspect_ratio,
    )
    session.add(sweep)
    session.flush()
    session.execute(insert(SweepRun), [{"sweep_id": sweep.id, "run_id": rid} for rid in run_ids])
    session.flush()
    return sweep, True


def _enqueue_rungs(
    session: Session,
    architecture_id: int,
    widths: list[int],
    seeds: list[int],
    steps: int,
    depth: int,
    lr: float,
    data_seed: int | None,
    noise: float,
) -> list[int]:
    """A warm-started ladder: per seed, the smallest width from scratch, then each width upscaled from
    the one before (trainer/upscale.py), each claimable once the run it widens has succeeded."""
    run_ids: list[int] = []
    previous: dict[int, int] = {}  # seed -> the previous rung's run id
    for i, width in enumerate(widths):
        keys = {
            s: RunKey(width, depth, s, steps, lr, data_seed)
            if i == 0
            else RunKey(
                width,
                depth,
                s,
                steps,
                lr,
                data_seed,
                RunRole.upscaled,
                resume_step=steps,
                noise=noise,
                source=previous[s],
            )
            for s in seeds
        }
        ids = enqueue_runs(session, architecture_id, list(keys.values()))
        previous = {s: ids[key] for s, key in keys.items()}
        run_ids += previous.values()
    return run_ids


def _enqueue_horizons(
    session: Session,
    architecture_id: int,
    widths: list[int],
    seeds: list[int],
    depth: int,
    lr: float,
    data_seed: int | None,
    plan: HorizonPlan,
) -> list[int]:
    """A trunk per (width, seed), then its branches, each naming the trunk as its parent."""
    trunks = {
        (w, s): RunKey(
            w,
            depth,
            s,
            plan.steps[-1],
            lr,
            data_seed,
            RunRole.trunk,
            plan.warmup_steps,
            stop_step=plan.trunk_steps,
        )
        for w in widths
        for s in seeds
    }
    trunk_ids = enqueue_runs(session, architecture_id, list(trunks.values()))
    parents = {
        RunKey(
            w, depth, s, total, lr, data_seed, RunRole.branch, plan.warmup_steps, resume_step=point
        ): trunk_ids[trunk]
        for (w, s), trunk in trunks.items()
        for total, point in zip(plan.steps, plan.branch_points, strict=True)
    }
    branch_ids = enqueue_runs(session, architecture_id, list(parents), parents)
    return [*trunk_ids.values(), *branch_ids.values()]


MAX_BACKOFF_SECONDS = 3600.0


def backoff(base_seconds: float, attempts: int) -> timedelta:
    """The wait after a run's `attempts`-th failed attempt: base × 2^(attempts − 1), at most an hour."""
    return timedelta(seconds=min(MAX_BACKOFF_SECONDS, base_seconds * 2 ** max(0, attempts - 1)))


def claim(session: Session, worker_id: str, lease_seconds: float) -> ClaimedRun | None:
    """Atomically take the oldest claimable queued run and lease it to `worker_id`; commits. A run
    waiting out its retry backoff (`not_before` in the future) is skipped, and so is a branch whose
    trunk has not succeeded (its checkpoint is not written yet)."""
    now = utcnow()
    parent = aliased(Run)
    trunk_done = exists().where(parent.id == Run.parent_run_id, parent.status == RunStatus.succeeded)
    oldest_queued = (
        select(Run.id)
        .where(
            Run.status == RunStatus.queued,
            or_(Run.not_before.is_(None), Run.not_before <= now),
            or_(Run.parent_run_id.is_(None), trunk_done),
        )
        .order_by(Run.created_at, Run.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serializes writers instead
        .scalar_subquery()
    )
    run_id = session.execute(
        update(Run)
        .where(Run.id == oldest_queued, Run.status == RunStatus.queued)
        .values(
            status=RunStatus.running,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            started_at=now,
            attempts=Run.attempts + 1,
            progress_step=0,
            updated_at=now,
        )
        .returning(Run.id)
    ).scalar_one_or_none()
    if run_id is None:
        session.commit()
        return None
    run = session.execute(
        select(
            Run.id,
            Run.architecture_id,
            Architecture.spec,
            Run.width,
            Run.depth,
            Run.seed,
            Run.data_seed,
            Run.steps,
            Run.lr,
            Run.attempts,
            Run.role,
            Run.parent_run_id,
            Run.warmup_steps,
            Run.stop_step,
            Run.resume_step,
            Run.noise,
        )
        .join(Architecture, Architecture.id == Run.architecture_id)
        .where(Run.id == run_id)
    ).one()
    # Where runs resuming from this one start: a trunk's branch points, the end of a run that others
    # are upscaled from (one queued later finds no checkpoint and has it rewritten: resume_queue).
    steps = session.scalars(select(Run.resume_step).where(Run.parent_run_id == run_id).distinct())
    checkpoints = tuple(sorted(int(step) for step in steps if step is not None))
    session.commit()
    return ClaimedRun(**run._asdict(), checkpoint_steps=checkpoints)


def _held_by(run_id: int, worker_id: str) -> Any:
    return and_(Run.id == run_id, Run.lease_owner == worker_id, Run.status == RunStatus.running)


def heartbeat(
    session: Session,
    run_id: int,
    worker_id: str,
    lease_seconds: float,
    step: int,
    total: int,
    loss: float | None,
    new_points: Sequence[tuple[int, float]] = (),
    tokens_per_second: float | None = None,
) -> bool:
    """Renew the lease and record progress (with the current throughput, which the result replaces when
    the run finishes); False means the lease is gone and the worker must stop."""
    now = utcnow()
    renewed = _changed(
        session,
        update(Run)
        .where(_held_by(run_id, worker_id))
        .values(
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            progress_step=step,
            progress_total=total,
            progress_loss=loss,
            tokens_per_second=tokens_per_second,
            updated_at=now,
        ),
    )
    if renewed and new_points:
        insert_ignoring_duplicates(
            session,
            RunMetric.__table__,
            [{"run_id": run_id, "step": s, "train_loss": v} for s, v in new_points],
        )
    session.commit()
    if not renewed:
        log.warning("run %s: heartbeat from %s refused, the lease is no longer theirs", run_id, worker_id)
    return bool(renewed)


def complete(session: Session, run_id: int, worker_id: str, result: dict[str, Any]) -> bool:
    """Store a finished run (succeeded or diverged) and its loss curve, if `worker_id` holds the lease.

    Returns False for a refused write. A retry after a connection drop that hid an earlier successful
    commit is recognised (the same result is already stored) and returns True.
    """
    status = RunStatus.diverged if result["status"] == "diverged" else RunStatus.succeeded
    now = utcnow()
    values = result_values(result)
    stored = _changed(
        session,
        update(Run)
        .where(_held_by(run_id, worker_id))
        .values(
            status=status, lease_owner=None, lease_expires_at=None, finished_at=now, updated_at=now, **values
        ),
    )
    if stored:
        session.execute(delete(RunMetric).where(RunMetric.run_id == run_id))
        curve = [
            {"run_id": run_id, "step": s, "train_loss": v}
            for s, v in result.get(CURVE, [])
            if math.isfinite(v)  # the trainer's curve is finite; a NaN here would break every reader
        ]
        if curve:
            session.execute(insert(RunMetric), curve)
        session.commit()
        return True
    session.rollback()
    row = session.get(Run, run_id)
    if (
        row is not None
        and row.status == status
        and row.lease_owner is None
        and row.final_train_loss == values["final_train_loss"]
        and row.corpus_fingerprint == values["corpus_fingerprint"]
    ):
        return True  # our own earlier commit landed before the connection dropped
    log.warning("run %s: result from %s refused, the lease is no longer theirs", run_id, worker_id)
    return False


def fail(
    session: Session,
    run_id: int,
    worker_id: str,
    error: str,
    max_attempts: int,
    backoff_seconds: float = 0.0,
) -> RunStatus | None:
    """Record a crash: requeue while attempts remain (claimable again after `backoff`), else mark
    failed. None if the lease was lost."""
    row = session.get(Run, run_id)
    if row is None:
        return None
    status = RunStatus.failed if row.attempts >= max_attempts else RunStatus.queued
    now = utcnow()
    changed = _changed(
        session,
        update(Run)
        .where(_held_by(run_id, worker_id))
        .values(
            status=status,
            error=error[-10_000:],
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now if status == RunStatus.failed else None,
            not_before=(
                now + backoff(backoff_seconds, row.attempts)
                if status == RunStatus.queued and backoff_seconds > 0
                else None
            ),
            updated_at=now,
        ),
    )
    session.commit()
    return status if changed else None


RETRYABLE = (RunStatus.failed, RunStatus.cancelled)
CANCELLABLE = (RunStatus.queued, RunStatus.running)


def fresh_attempts() -> dict[str, Any]:
    """A run queued again with a fresh set of attempts: a user's retry, or a trunk trained again."""
    return {
        "status": RunStatus.queued,
        "attempts": 0,
        "not_before": None,
        "finished_at": None,
        "progress_step": 0,
        "progress_loss": None,
        "updated_at": utcnow(),
    }


def retry(session: Session, run_ids: Sequence[int]) -> list[int]:
    """Queue the failed or cancelled runs among `run_ids` again, each with a fresh set of attempts (a
    user's retry, after fixing what failed them: the corpus, the data roots, the worker). Runs in any
    other state are left as they are; a failed run's last error stays until the next attempt's outcome
    replaces it. Returns the ids requeued; commits."""
    failed = list(session.scalars(select(Run.id).where(Run.id.in_(list(run_ids)), Run.status.in_(RETRYABLE))))
    # A branch waits for its trunk: a failed or cancelled trunk of a retried branch is retried with it.
    trunks = select(Run.parent_run_id).where(Run.id.in_(failed), Run.parent_run_id.is_not(None))
    failed += list(session.scalars(select(Run.id).where(Run.id.in_(trunks), Run.status.in_(RETRYABLE))))
    if failed:
        session.execute(
            update(Run).where(Run.id.in_(failed), Run.status.in_(RETRYABLE)).values(**fresh_attempts())
        )
        announce(session)
    session.commit()
    return failed


def cancel(session: Session, run_ids: Sequence[int]) -> list[int]:
    """Cancel the queued and running runs among `run_ids`; returns their ids; commits.

    A queued run is never claimed; a running one loses its lease with this write, so its worker's next
    heartbeat is refused and it stops training and drops the run (app.worker), within a heartbeat."""
    live = list(session.scalars(select(Run.id).where(Run.id.in_(list(run_ids)), Run.status.in_(CANCELLABLE))))
    if live:
        now = utcnow()
        session.execute(
            update(Run)
            .where(Run.id.in_(live), Run.status.in_(CANCELLABLE))
            .values(
                status=RunStatus.cancelled,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
        )
    session.commit()
    return live


def release(session: Session, run_id: int, worker_id: str) -> bool:
    """Hand a run back untouched (the worker was asked to stop): it does not count as an attempt."""
    changed = _changed(
        session,
        update(Run)
        .where(_held_by(run_id, worker_id))
        .values(
            status=RunStatus.queued,
            lease_owner=None,
            lease_expires_at=None,
            attempts=Run.attempts - 1,
            progress_step=0,
            updated_at=utcnow(),
        ),
    )
    session.commit()
    return bool(changed)


def reap_expired(
    session: Session, max_attempts: int, now: datetime | None = None, backoff_seconds: float = 0.0
) -> int:
    """Requeue runs whose lease expired (their worker died), claimable again after their backoff;
    after `max_attempts` mark them failed."""
    now = now or datetime.now(timezone.utc)
    expired = and_(Run.status == RunStatus.running, Run.lease_expires_at < now)
    # Each row's own backoff, by its attempt count (computed here, so the SQL stays portable).
    not_before = (
        case(
            *((Run.attempts == k, now + backoff(backoff_seconds, k)) for k in range(1, max_attempts)),
            else_=now + backoff(backoff_seconds, max_attempts),
        )
        if backoff_seconds > 0
        else None
    )
    requeued = _changed(
        session,
        update(Run)
        .where(expired, Run.attempts < max_attempts)
        .values(
            status=RunStatus.queued,
            lease_owner=None,
            lease_expires_at=None,
            not_before=not_before,
            error="lease expired: the worker stopped sending heartbeats",
            updated_at=now,
        ),
    )
    failed = _changed(
        session,
        update(Run)
        .where(expired, Run.attempts >= max_attempts)
        .values(
            status=RunStatus.failed,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            error=f"lease expired on attempt {max_attempts} of {max_attempts}: giving up",
            updated_at=now,
        ),
    )
    session.commit()
    if requeued or failed:
        log.info(
            "reaper: %d expired run(s) requeued, %d failed after %d attempts", requeued, failed, max_attempts
        )
    return int(requeued + failed)
