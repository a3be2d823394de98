"""The README's Slurm recipe (app.slurm.submit_workers) with submitit's local executor: real subprocess
jobs that claim and train real runs from the database (issue 15 point 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import submitit

from app.models import RunStatus
from app.settings import Settings
from app.slurm import submit_workers
from tests.app.api_helpers import enqueue_one, one_run_spec, stored_run


def test_an_array_of_worker_jobs_drains_the_queue(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUPREDICT_DATABASE_URL", fresh_db_url)  # the jobs inherit the environment
    monkeypatch.setenv("MUPREDICT_DEVICE", "cpu")
    settings = Settings(_env_file=None)
    ids = [enqueue_one(settings, {**one_run_spec("builtin"), "head_dim": h}, steps=10) for h in (4, 8, 16)]
    executor = submitit.LocalExecutor(folder=tmp_path / "slurm-logs")
    executor.update_parameters(timeout_min=10)
    jobs = submit_workers(executor, 2)
    processed = [job.result() for job in jobs]  # waits for both jobs; raises if one failed
    assert sum(processed) == len(ids)  # every run was claimed once, by one of the two jobs
    assert all(stored_run(settings, run_id).status == RunStatus.succeeded for run_id in ids)


def test_at_least_one_job() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        submit_workers(object(), 0)
