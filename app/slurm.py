"""Workers as Slurm jobs, through submitit: the README's recipe calls `submit_workers`, and its test runs
the same call with submitit's local executor (real subprocess jobs claiming real runs).

Each job is one worker on the job's GPU (Slurm sets CUDA_VISIBLE_DEVICES; the device is the settings',
`auto` by default), reading its settings from the environment the job inherits. With `once` it exits
when the queue is empty, so an array of jobs drains a sweep and ends. Slurm's SIGTERM at a job's time
limit or preemption hands the run in flight back to the queue, as for any worker.
"""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from app.worker import Worker


def work(once: bool = True) -> int:
    """One job's worker; returns the runs it processed."""
    worker = Worker(Settings())
    worker.install_signal_handlers()
    return worker.run(once=once)


def submit_workers(executor: Any, count: int, *, once: bool = True) -> list[Any]:
    """Submit `count` worker jobs as one array through a submitit executor (AutoExecutor on a cluster,
    LocalExecutor on one machine); returns the submitit jobs (`job.result()`: runs processed)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    jobs: list[Any] = executor.map_array(work, [once] * count)
    return jobs
