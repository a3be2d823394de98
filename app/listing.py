"""Architectures as listed: each one's run counts and latest tuning, read for a whole page at once.

Five queries for a page of any size (the page, run counts, succeeded widths, latest tunings, which
queued tunings have started), where one set per architecture made the list cost grow with the page
(issue 15 point 5: the N+1 query in the architecture list).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import tuning
from app.models import Architecture, Run, RunRole, RunStatus, Tuning, TuningStatus
from app.schemas import RunCounts, TuningSummary


def summaries(
    session: Session, archs: Sequence[Architecture]
) -> dict[int, tuple[RunCounts, TuningSummary | None]]:
    """Per architecture id: its runs per status (with distinct succeeded widths) and its latest tuning."""
    ids = [a.id for a in archs]
    counts = {i: RunCounts() for i in ids}
    for arch_id, status, n in session.execute(
        select(Run.architecture_id, Run.status, func.count())
        .where(Run.architecture_id.in_(ids))
        .group_by(Run.architecture_id, Run.status)
    ):
        setattr(counts[arch_id], RunStatus(status).value, int(n))
    # Whole runs, from scratch or upscaled: the sizes (width, depth) a whole-run ladder can use (trunks
    # and branches are fitted in (N, D)); which of them one fit pools is its recipe's business.
    sizes = (
        select(Run.architecture_id, Run.width, Run.depth)
        .where(
            Run.architecture_id.in_(ids),
            Run.status == RunStatus.succeeded,
            Run.role.in_([RunRole.run, RunRole.upscaled]),
        )
        .distinct()
        .subquery()
    )
    for arch_id, widths in session.execute(
        select(sizes.c.architecture_id, func.count()).group_by(sizes.c.architecture_id)
    ):
        counts[arch_id].succeeded_widths = int(widths)
    newest = (
        select(func.max(Tuning.id)).where(Tuning.architecture_id.in_(ids)).group_by(Tuning.architecture_id)
    )
    latest = {t.architecture_id: t for t in session.scalars(select(Tuning).where(Tuning.id.in_(newest)))}
    started = tuning.started(session, [t.id for t in latest.values() if t.status == TuningStatus.queued])
    out: dict[int, tuple[RunCounts, TuningSummary | None]] = {}
    for arch_id in ids:
        row = latest.get(arch_id)
        summary = None
        if row is not None:
            # As tuning.effective_status: a queued tuning is running once one of its runs has started.
            state = TuningStatus.running if row.id in started else row.status
            result = row.result or {}
            summary = TuningSummary(
                id=row.id,
                status=state.value,
                lr_star=result.get("lr_star"),
                lower=result.get("lower"),
                upper=result.get("upper"),
                ladder_lr=tuning.ladder_lr(row),
                transfer={axis: t["verdict"] for axis, t in (result.get("transfer") or {}).items()},
            )
        out[arch_id] = (counts[arch_id], summary)
    return out
