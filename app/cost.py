"""What a ladder will cost before it is queued: its training FLOPs, and its wall time at the throughput
that recent runs reached on the workers (issue 20, point 8). A rough guide, not a promise: tiny proxies
use a device less well than large ones, and a worker of another kind may take the next run."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Run, RunStatus

RECENT_RUNS = 20


@dataclass(frozen=True)
class Throughput:
    flops_per_second: float  # the median over the recent runs on `device`
    device: str
    runs: int

    def seconds(self, flops: float) -> float:
        return flops / self.flops_per_second

    @property
    def basis(self) -> str:
        return f"the median throughput of the last {self.runs} finished run(s) on {self.device}"


def recent_throughput(session: Session) -> Throughput | None:
    """Achieved training FLOP/s of the latest finished runs on the device kind that ran the latest one
    (None before any run finished)."""
    rows = session.execute(
        select(Run.device, Run.flops, Run.wall_seconds)
        .where(Run.status == RunStatus.succeeded, Run.flops > 0, Run.wall_seconds > 0)
        .order_by(Run.finished_at.desc())
        .limit(5 * RECENT_RUNS)
    ).all()
    if not rows:
        return None
    device = rows[0].device or "an unnamed device"
    rates = [r.flops / r.wall_seconds for r in rows if (r.device or "an unnamed device") == device]
    rates = rates[:RECENT_RUNS]
    return Throughput(statistics.median(rates), device, len(rates))
