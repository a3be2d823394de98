"""`mupredict worker --gpus`: one worker process per slot, crashed children restarted, SIGTERM forwarded
(issue 15 point 7). Real child processes claim real runs; CPU slots stand in for GPUs here, and the
GPU mapping is checked on its own."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.db import make_engine, session_factory
from app.models import Run, RunStatus
from app.settings import Settings
from app.supervisor import NoGpus, Slot, Supervisor, gpu_slots, parse_gpus
from tests.app.api_helpers import enqueue_one, one_run_spec


def test_gpus_are_parsed_against_the_visible_ones() -> None:
    assert parse_gpus("all", 4) == [0, 1, 2, 3]
    assert parse_gpus("0,2", 4) == [0, 2]
    with pytest.raises(NoGpus, match=r"no GPU is visible.*--device cpu"):
        parse_gpus("all", 0)
    with pytest.raises(NoGpus, match="GPU 5 does not exist"):
        parse_gpus("1,5", 4)
    with pytest.raises(NoGpus, match="distinct"):
        parse_gpus("1,1", 4)
    with pytest.raises(NoGpus, match="indices such as"):
        parse_gpus("first", 4)


def test_each_child_sees_only_its_own_gpu() -> None:
    assert [(s.name, s.device, s.env) for s in gpu_slots([0, 1])] == [
        ("gpu0", "cuda", {"CUDA_VISIBLE_DEVICES": "0"}),
        ("gpu1", "cuda", {"CUDA_VISIBLE_DEVICES": "1"}),
    ]
    # Under CUDA_VISIBLE_DEVICES=4,5 this process's GPU 1 is the machine's GPU 5.
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in gpu_slots([0, 1], "4,5")] == ["4", "5"]


@pytest.fixture
def database(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    # The children read their settings from the environment, as `mupredict worker` does.
    monkeypatch.setenv("MUPREDICT_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("MUPREDICT_LEASE_SECONDS", "4")
    monkeypatch.setenv("MUPREDICT_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("MUPREDICT_RETRY_BACKOFF_SECONDS", "0")
    yield Settings(_env_file=None)


def _runs(settings: Settings) -> list[Run]:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(Run).order_by(Run.id)))
    finally:
        engine.dispose()


def _supervise(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    restarts: list[int] = []
    thread = threading.Thread(target=lambda: restarts.append(supervisor.run()))
    thread.start()
    return thread, restarts


def _wait_for(condition: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_children_drain_the_queue_and_finish(database: Settings) -> None:
    ids = [enqueue_one(database, {**one_run_spec("builtin"), "head_dim": h}, steps=20) for h in (4, 8, 16)]
    supervisor = Supervisor([Slot("cpu0", "cpu"), Slot("cpu1", "cpu")], ["--once", "--poll-seconds", "0.2"])
    thread, restarts = _supervise(supervisor)
    thread.join(timeout=180)
    assert not thread.is_alive() and restarts == [0]  # both exited 0 with the queue empty: not restarted
    assert [r.status for r in _runs(database)] == [RunStatus.succeeded] * len(ids)


def test_a_crashed_child_is_restarted_and_its_run_finished(database: Settings) -> None:
    run_id = enqueue_one(database, one_run_spec("builtin"), steps=3000)  # seconds: killed mid-run
    supervisor = Supervisor([Slot("cpu0", "cpu")], ["--poll-seconds", "0.2"])
    thread, restarts = _supervise(supervisor)
    try:
        _wait_for(lambda: _runs(database)[0].status == RunStatus.running)
        first = supervisor.children[0].process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)  # an out-of-memory kill, say
        # The restarted child reaps the expired lease and trains the run to the end.
        _wait_for(lambda: _runs(database)[0].status == RunStatus.succeeded, timeout=180)
        restarted = supervisor.children[0].process
        assert restarted is not None and restarted.pid != first.pid
    finally:
        supervisor.stopping.set()
        thread.join(timeout=60)
    run = _runs(database)[0]
    assert run.id == run_id and run.attempts == 2 and restarts == [1]


def test_stopping_forwards_sigterm_and_runs_go_back_to_the_queue(database: Settings) -> None:
    enqueue_one(database, one_run_spec("builtin"), steps=1_000_000)  # far longer than the test
    supervisor = Supervisor([Slot("cpu0", "cpu")], ["--poll-seconds", "0.2"])
    thread, _ = _supervise(supervisor)
    _wait_for(lambda: _runs(database)[0].progress_step > 0)
    supervisor.stopping.set()  # what SIGTERM to the supervisor does
    thread.join(timeout=60)
    assert not thread.is_alive()
    child = supervisor.children[0].process
    assert child is not None and child.returncode == 0  # stopped cleanly, not killed
    run = _runs(database)[0]
    assert run.status == RunStatus.queued and run.lease_owner is None  # handed back at once


def test_a_child_that_keeps_crashing_is_given_up(database: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.supervisor.RESTART_DELAY_SECONDS", 0.05)
    supervisor = Supervisor([Slot("bad", "no-such-device")])  # refused at start: exit code 2
    thread, restarts = _supervise(supervisor)
    thread.join(timeout=120)
    assert not thread.is_alive() and supervisor.gave_up == ["bad"] and restarts == [4]


def test_the_cli_refuses_gpus_it_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # a CPU machine, whatever runs this
    result = runner.invoke(cli, ["worker", "--gpus", "all"])
    assert result.exit_code == 2 and "no GPU is visible" in result.output and "--device cpu" in result.output
    result = runner.invoke(cli, ["worker", "--gpus", "0", "--device", "cpu"])
    assert result.exit_code == 2 and "not both" in result.output
