"""LR tunings through the queue: one trainer.tuning plan per request, advanced as its runs finish.

A tuning queues the plan's first grid (every shape × LR × seed) as ordinary runs, linked to it with their
grid position. Whenever one of its runs finishes, the worker calls `advance`: once no run of the tuning
is queued or running, the plan says which grid points to add (an edge extension or a half step) or, when
every curve is settled, the result is stored. Every step is idempotent (runs and links are inserted
with ON CONFLICT DO NOTHING, the final write is conditional), so two workers advancing the same tuning
at once, or a worker that dies between storing a run and advancing, leave it correct: the idle worker
loop advances any tuning whose runs have all finished (`advance_stalled`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from app import queue
from app.models import Architecture, Run, RunStatus, Tuning, TuningRun, TuningStatus, utcnow
from trainer import ArchitectureSpec
from trainer.horizon import lr_steps
from trainer.tuning import Observation, Point, Shape, TuningPlan
from trainer.tuning_result import HorizonRule, analyze, round_lr

FINAL = (TuningStatus.succeeded, TuningStatus.failed)
ACTIVE_RUN = (RunStatus.queued, RunStatus.running)
MAX_ROUNDS_PER_ADVANCE = 64  # grid rounds whose runs all exist already (shared with another tuning)


def default_widths(spec: ArchitectureSpec) -> list[int]:
    """The transfer check's default widths: ×4 and ×8 the base width."""
    return [4 * spec.parametrization.base_width, 8 * spec.parametrization.base_width]


def default_depths(spec: ArchitectureSpec) -> list[int]:
    """×4 and ×8 the spec's depth when the spec scales with depth (depth_alpha > 0); else none."""
    return [4 * spec.n_layers, 8 * spec.n_layers] if spec.parametrization.depth_alpha > 0 else []


def plan_of(params: dict[str, Any]) -> TuningPlan:
    return TuningPlan(
        center_lr=params["center_lr"],
        base=Shape(params["base_width"], params["base_depth"], params["steps"]),
        widths=tuple(params["widths"]),
        depths=tuple(params["depths"]),
        horizons=tuple(params.get("horizons", ())),  # absent from tunings stored before the horizon check
        seeds=tuple(params["seeds"]),
        grid_factor=params["grid_factor"],
        grid_points=params["grid_points"],
        max_extensions=params["max_extensions"],
        level=params["level"],
    )


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def create(session: Session, architecture: Architecture, params: dict[str, Any]) -> tuple[Tuning, bool]:
    """The tuning for these resolved params, queueing its first grid if it is new; commits."""
    key = params_hash(params)
    existing = session.scalar(
        select(Tuning).where(Tuning.architecture_id == architecture.id, Tuning.params_hash == key)
    )
    if existing is not None:
        return existing, False
    inserted = queue.insert_ignoring_duplicates(
        session,
        Tuning.__table__,
        [
            {
                "architecture_id": architecture.id,
                "params": params,
                "params_hash": key,
                "status": TuningStatus.queued.value,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            }
        ],
    )
    tuning = session.scalar(
        select(Tuning).where(Tuning.architecture_id == architecture.id, Tuning.params_hash == key)
    )
    assert tuning is not None
    if inserted:
        _queue_points(session, tuning, plan_of(params).initial_points())
    session.commit()
    return tuning, bool(inserted)


def _queue_points(session: Session, tuning: Tuning, points: list[Point]) -> None:
    steps = tuning.params["steps"]
    keys = {
        p: queue.RunKey(p.shape.width, p.shape.depth, p.seed, p.shape.steps or steps, p.lr) for p in points
    }
    run_ids = queue.enqueue_runs(session, tuning.architecture_id, list(keys.values()))
    queue.insert_ignoring_duplicates(
        session,
        TuningRun.__table__,
        [{"tuning_id": tuning.id, "run_id": run_ids[keys[p]], "lr_index": p.index} for p in points],
    )


def _runs(session: Session, tuning_id: int) -> list[Any]:
    return list(
        session.execute(
            select(TuningRun.lr_index, Run.width, Run.depth, Run.steps, Run.seed, Run.status, Run.val_loss)
            .join(Run, Run.id == TuningRun.run_id)
            .where(TuningRun.tuning_id == tuning_id)
        ).all()
    )


def observations(rows: list[Any]) -> list[Observation]:
    """The finished runs as the plan sees them: a loss, a divergence, or a crash (no information)."""
    out = []
    for index, width, depth, steps, seed, status, val_loss in rows:
        shape = Shape(width, depth, steps)
        if status == RunStatus.succeeded and val_loss is not None and math.isfinite(val_loss):
            out.append(Observation(shape, index, seed, "ok", float(val_loss)))
        elif status in (RunStatus.succeeded, RunStatus.diverged):
            out.append(Observation(shape, index, seed, "diverged"))
        elif status in (RunStatus.failed, RunStatus.cancelled):
            out.append(Observation(shape, index, seed, "failed"))
    return out


def advance(session: Session, tuning_id: int) -> TuningStatus | None:
    """Queue the next grid points or store the result, once none of the tuning's runs is in flight."""
    for _ in range(MAX_ROUNDS_PER_ADVANCE):
        tuning = session.get(Tuning, tuning_id, populate_existing=True)
        if tuning is None or tuning.status in FINAL:
            return tuning.status if tuning else None
        rows = _runs(session, tuning_id)
        if any(row.status in ACTIVE_RUN for row in rows):
            return tuning.status
        plan = plan_of(tuning.params)
        found = observations(rows)
        points = plan.next_points(found)
        if points:
            _queue_points(session, tuning, points)
            _set_status(session, tuning_id, TuningStatus.running)
            session.commit()
            continue  # runs shared with another tuning may have finished already
        result = analyze(plan, found)
        final = TuningStatus.succeeded if result.status == "succeeded" else TuningStatus.failed
        session.execute(
            update(Tuning)
            .where(Tuning.id == tuning_id, Tuning.status.not_in(FINAL))
            .values(status=final, result=result.to_dict(), error=result.reason, finished_at=utcnow())
        )
        session.commit()
        return final
    raise RuntimeError(f"tuning {tuning_id}: no progress after {MAX_ROUNDS_PER_ADVANCE} grid rounds")


def _set_status(session: Session, tuning_id: int, status: TuningStatus) -> None:
    session.execute(
        update(Tuning).where(Tuning.id == tuning_id, Tuning.status.not_in(FINAL)).values(status=status)
    )


def advance_for_run(session: Session, run_id: int) -> None:
    """Advance every tuning the run belongs to (the worker calls this after storing a result)."""
    tuning_ids = session.scalars(select(TuningRun.tuning_id).where(TuningRun.run_id == run_id)).all()
    session.rollback()  # end the read, so that a write begins its own transaction (SQLite)
    for tuning_id in tuning_ids:
        advance(session, tuning_id)


def advance_stalled(session: Session) -> int:
    """Advance unfinished tunings none of whose runs is in flight (a worker died between storing a run
    and advancing, or a run failed for good); returns how many were advanced."""
    in_flight = exists().where(
        TuningRun.tuning_id == Tuning.id, TuningRun.run_id == Run.id, Run.status.in_(ACTIVE_RUN)
    )
    stalled = session.scalars(select(Tuning.id).where(Tuning.status.not_in(FINAL), ~in_flight)).all()
    session.rollback()
    for tuning_id in stalled:
        advance(session, tuning_id)
    return len(stalled)


def latest(session: Session, architecture_id: int, *, succeeded: bool = False) -> Tuning | None:
    query = select(Tuning).where(Tuning.architecture_id == architecture_id)
    if succeeded:
        query = query.where(Tuning.status == TuningStatus.succeeded)
    return session.scalar(query.order_by(Tuning.id.desc()).limit(1))


def current_result(session: Session, tuning: Tuning) -> tuple[TuningStatus, dict[str, Any], list[Any]]:
    """The tuning's status (queued becomes running once a run started), its result (stored when final,
    else analysed from the runs so far) and its run rows."""
    rows = _runs(session, tuning.id)
    status = tuning.status
    if status == TuningStatus.queued and any(r.status != RunStatus.queued for r in rows):
        status = TuningStatus.running  # as effective_status, from the rows already read
    if tuning.result is not None:
        return status, tuning.result, rows
    return status, analyze(plan_of(tuning.params), observations(rows)).to_dict(), rows


def effective_status(session: Session, tuning: Tuning) -> TuningStatus:
    """The stored status, except that a queued tuning is running once one of its runs has started."""
    if tuning.status != TuningStatus.queued:
        return tuning.status
    return TuningStatus.running if started(session, [tuning.id]) else TuningStatus.queued


def started(session: Session, tuning_ids: Sequence[int]) -> set[int]:
    """The tunings among `tuning_ids` with at least one run past queued (one query for any number)."""
    if not tuning_ids:
        return set()
    return set(
        session.scalars(
            select(TuningRun.tuning_id)
            .join(Run, Run.id == TuningRun.run_id)
            .where(TuningRun.tuning_id.in_(list(tuning_ids)), Run.status != RunStatus.queued)
            .distinct()
        )
    )


def horizon_rule(tuning: Tuning | None) -> HorizonRule | None:
    """The tuning's horizon rule (η* against the training horizon), once its horizon check settled."""
    stored = (tuning.result or {}).get("horizon_rule") if tuning is not None else None
    return HorizonRule(**stored) if stored else None


def ladder_lr(tuning: Tuning | None, steps: int | None = None) -> float | None:
    """The LR a new sweep of `steps` trains at after this tuning, to 3 significant digits: η* at the
    base shape, moved along the horizon rule when the tuning's horizon check found a drift (None: at the
    tuning's own horizon)."""
    if tuning is None or tuning.result is None or tuning.result.get("lr_star") is None:
        return None
    rule = horizon_rule(tuning)
    if rule is not None and steps is not None:
        return round_lr(rule.lr_at(steps))
    return round_lr(float(tuning.result["lr_star"]))


def warnings(
    session: Session, architecture_id: int, spec: ArchitectureSpec, trained_lr: float, horizons: Sequence[int]
) -> list[str]:
    """What a prediction from a ladder trained at `trained_lr` for `horizons` (its runs' steps: one
    for whole runs, each budget's for a token-horizon grid) must say about the LR and its transfer."""
    tuning = latest(session, architecture_id)
    where = f"POST /v1/architectures/{architecture_id}/tuning"
    if tuning is None:
        return [
            f"the learning rate was never tuned for this architecture: its ladder trained at lr "
            f"{trained_lr:g} as given; tune it ({where}) and launch a new sweep, which trains at η*"
        ]
    # Only a final tuning's stored result is read: while it runs, its status is all the warning needs.
    status = effective_status(session, tuning)
    if status in (TuningStatus.queued, TuningStatus.running):
        return [
            f"LR tuning {tuning.id} is still {status.value}: the ladder trained at lr {trained_lr:g}, "
            "untuned; launch a new sweep once it has finished"
        ]
    if status == TuningStatus.failed:
        return [
            f"LR tuning {tuning.id} failed ({tuning.error}): the ladder trained at an untuned "
            f"lr {trained_lr:g}"
        ]
    out = []
    tuned = ladder_lr(tuning, lr_steps(horizons))
    if tuned is not None and not math.isclose(trained_lr, tuned, rel_tol=1e-9):
        out.append(
            f"the ladder trained at lr {trained_lr:g}, not at the tuned η* {tuned:g}: launch a new sweep "
            "(it trains at η* unless you pin lr)"
        )
    transfer = (tuning.result or {}).get("transfer") or {}
    base = spec.parametrization.base_width
    width = transfer.get("width")
    if width is None:
        out.append(
            f"μP transfer across width was never checked (tuned at width {base} only): tune again with "
            f"widths {default_widths(spec)} to check it"
        )
    elif width["verdict"] != "transfers":
        out.append(
            f"μP transfer across width {width['verdict']}: {width['reason']}; one LR may not suit the "
            "larger proxies, let alone the target"
        )
    depth = transfer.get("depth")
    if depth is not None and depth["verdict"] != "transfers":
        out.append(f"transfer across depth {depth['verdict']}: {depth['reason']}")
    return out + horizon_warnings(tuning, spec, horizons, where)


def horizon_warnings(
    tuning: Tuning, spec: ArchitectureSpec, horizons: Sequence[int], where: str
) -> list[str]:
    """What the LR's horizon says about a ladder of `horizons` (steps): never checked although the
    ladder trains at another horizon; the rule extrapolated; the budgets of a grid off their own η*."""
    tuned_steps = tuning.params["steps"]
    rule = horizon_rule(tuning)
    shortest, longest = min(horizons), max(horizons)
    if rule is None:
        if shortest == longest == tuned_steps:
            return []
        asked = sorted({shortest, tuned_steps, longest})
        return [
            f"η* was tuned for {tuned_steps}-step runs but this ladder trains "
            + (f"{shortest}-step runs" if shortest == longest else f"budgets of {shortest}…{longest} steps")
            + ": the optimal LR falls as training gets longer (Bjorck et al. 2025; about steps^(−1/3) in "
            "Shigida et al. 2026 §3.3) and μP does not carry it across horizons; check it with "
            f"token_budgets {[s * spec.training.batch_tokens for s in asked]} ({where})"
        ]
    out = []
    low, high = min(rule.horizons), max(rule.horizons)
    if shortest < low or longest > high:
        out.append(
            f"the LR's horizon rule was fitted over {low}…{high} steps; this ladder trains "
            f"{shortest}…{longest}: beyond the checked horizons it is an extrapolation"
        )
    if rule.applied and shortest < longest:
        reference = lr_steps(horizons)
        off = max(rule.mismatch_log2(s, reference) for s in (shortest, longest))
        curves = (tuning.result or {}).get("curves") or [{}]
        curvature = ((curves[0] or {}).get("optimum") or {}).get("curvature")
        cost = (
            f", which the LR curve's curvature at the base puts at about {0.5 * curvature * off * off:.3g} "
            "nats of loss there"
            if curvature
            else ""
        )
        out.append(
            f"the budgets share one trunk LR, set for {reference} steps by the horizon rule "
            f"(η* ∝ steps^{rule.exponent:+.2f}): the shortest and the longest budget train ×{2**off:.2f} "
            f"off their own η*{cost}; the grid's fit carries that"
        )
    return out
