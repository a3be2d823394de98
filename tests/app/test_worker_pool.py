"""The worker pool under real failures: separate `mupredict worker` processes, real training, real databases.

Each test starts workers as subprocesses against a fresh database (PostgreSQL when configured, and SQLite
where the failure applies), then breaks something: kills a worker, freezes one past its lease, or cuts
every database connection. Nothing may be lost and no run may be stored twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import architectures, queue
from app.db import make_engine
from app.models import Run, RunMetric, RunStatus
from trainer import ArchitectureSpec

pytestmark = pytest.mark.slow
STORED = re.compile(r"run (\d+): stored")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small real-text corpus (standard-library sources) so tiny runs start fast."""
    import json as json_module

    text_path = tmp_path / "corpus.txt"
    text_path.write_text(Path(json_module.__file__).read_text() * 4 + Path(re.__file__).read_text() * 4)
    return text_path


def tiny_spec(corpus: Path, name: str = "tiny", steps: int = 8) -> ArchitectureSpec:
    return ArchitectureSpec.model_validate(
        {
            "name": name,
            "n_layers": 1,
            "head_dim": 8,
            "context_length": 32,
            "proxy_widths": [16],
            "training": {"steps": steps, "batch_tokens": 256, "eval_tokens": 1024},
            "dataset": {"source": str(corpus)},
        }
    )


def enqueue(url: str, spec: ArchitectureSpec, widths: list[int], seeds: list[int], steps: int) -> int:
    engine = make_engine(url)
    with Session(engine) as session:
        arch, _ = architectures.register(session, spec)
        queue.enqueue_sweep(
            session, arch, widths, seeds, steps, depth=spec.n_layers, lr=spec.training.lr, lr_source="spec"
        )
        session.commit()
        arch_id = arch.id
    engine.dispose()
    return arch_id


class Pool:
    """Worker subprocesses with their logs, stopped (SIGKILL) at the end of the test."""

    def __init__(self, url: str, tmp: Path, cache: Path, **settings: float) -> None:
        self.env = {
            **os.environ,
            "MUPREDICT_DATABASE_URL": url,
            "MUPREDICT_CACHE_DIR": str(cache),
            "MUPREDICT_DATA_DIRS": str(tmp),  # where the corpus fixture writes
            "OMP_NUM_THREADS": "1",
            **{f"MUPREDICT_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{len(self.procs)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--device", "cpu", "--poll-seconds", "0.3", *args],
            env=self.env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def wait(self, timeout: float) -> None:
        for proc in self.procs:
            proc.wait(timeout=timeout)

    def stored(self) -> Counter[int]:
        return Counter(int(m) for log in self.logs for m in STORED.findall(log.read_text()))

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def pool_factory(tmp_path: Path) -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def make(url: str, **settings: float) -> Pool:
        pool = Pool(url, tmp_path, tmp_path / "cache", **settings)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.kill_all()


def runs(url: str) -> list[Run]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = list(session.scalars(select(Run).order_by(Run.id)))
    engine.dispose()
    return rows


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_four_workers_store_every_run_exactly_once(
    fresh_db_url: str, corpus: Path, pool_factory: Callable[..., Pool]
) -> None:
    enqueue(fresh_db_url, tiny_spec(corpus, steps=4), [16, 24, 32, 40], list(range(10)), steps=4)
    pool = pool_factory(fresh_db_url)
    for _ in range(4):
        pool.start("--once")
    pool.wait(timeout=300)
    rows = runs(fresh_db_url)
    assert len(rows) == 40
    assert {r.status for r in rows} == {RunStatus.succeeded}, pool.output()
    assert all(r.attempts == 1 and r.val_loss is not None and r.lease_owner is None for r in rows)
    stored = pool.stored()
    assert set(stored) == {r.id for r in rows} and set(stored.values()) == {1}, "a run was stored twice"
    engine = make_engine(fresh_db_url)
    with Session(engine) as session:
        curves = session.execute(select(RunMetric.run_id, func.count()).group_by(RunMetric.run_id)).all()
    engine.dispose()
    assert len(curves) == 40 and all(n >= 2 for _, n in curves), "every run keeps its loss curve"


def test_killed_worker_run_is_reclaimed_and_finished(
    fresh_db_url: str, corpus: Path, pool_factory: Callable[..., Pool]
) -> None:
    enqueue(fresh_db_url, tiny_spec(corpus, steps=2000), [16], [0], steps=2000)
    pool = pool_factory(fresh_db_url, lease_seconds=3, heartbeat_seconds=0.5)
    victim = pool.start("--once")
    wait_until(lambda: runs(fresh_db_url)[0].progress_step > 0, 120, "the first worker to make progress")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert runs(fresh_db_url)[0].status == RunStatus.running  # nobody handed it back
    time.sleep(4)  # past the 3 s lease: a `--once` worker exits at once if nothing is claimable yet
    pool.start("--once").wait(timeout=300)
    (run,) = runs(fresh_db_url)
    assert run.status == RunStatus.succeeded, pool.output()
    assert run.attempts == 2 and run.val_loss is not None
    assert list(pool.stored().values()) == [1]


def test_frozen_worker_loses_its_lease_and_its_late_writes_are_refused(
    fresh_db_url: str, corpus: Path, pool_factory: Callable[..., Pool]
) -> None:
    enqueue(fresh_db_url, tiny_spec(corpus, steps=1500), [16], [0], steps=1500)
    pool = pool_factory(fresh_db_url, lease_seconds=2, heartbeat_seconds=0.5)
    zombie = pool.start("--once")
    wait_until(lambda: runs(fresh_db_url)[0].progress_step > 0, 120, "the first worker to make progress")
    zombie.send_signal(signal.SIGSTOP)  # frozen: no heartbeats, lease expires
    time.sleep(3)
    rescuer = pool.start("--once")
    wait_until(lambda: runs(fresh_db_url)[0].attempts == 2, 60, "the second worker to claim the run")
    zombie.send_signal(signal.SIGCONT)
    rescuer.wait(timeout=300)
    zombie.wait(timeout=120)
    (run,) = runs(fresh_db_url)
    assert run.status == RunStatus.succeeded and run.attempts == 2
    log = pool.output()
    assert "refused, the lease is no longer theirs" in log, log
    assert list(pool.stored().values()) == [1], log


@pytest.mark.postgres
def test_workers_survive_terminated_connections(
    fresh_db_url: str, corpus: Path, pool_factory: Callable[..., Pool]
) -> None:
    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's; SQLite has no server connection to cut")
    enqueue(fresh_db_url, tiny_spec(corpus, steps=300), [16, 24, 32], [0, 1, 2], steps=300)
    pool = pool_factory(fresh_db_url, lease_seconds=20, heartbeat_seconds=0.5)
    for _ in range(2):
        pool.start("--once")
    database = make_url(fresh_db_url).database
    admin = create_engine(make_url(fresh_db_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    terminated = 0
    try:
        for _ in range(4):
            wait_until(
                lambda: (
                    any(r.status == RunStatus.running for r in runs(fresh_db_url))
                    or all(r.status == RunStatus.succeeded for r in runs(fresh_db_url))
                ),
                120,
                "a run in flight",
            )
            with admin.connect() as conn:
                terminated += len(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :db AND pid <> pg_backend_pid()"
                        ),
                        {"db": database},
                    ).all()
                )
            time.sleep(1.5)
    finally:
        admin.dispose()
    pool.wait(timeout=300)
    rows = runs(fresh_db_url)
    assert terminated > 0
    assert {r.status for r in rows} == {RunStatus.succeeded}, pool.output()
    assert set(pool.stored().values()) == {1} and len(pool.stored()) == 9
    # Recovery is either transparent (the pool's pre-ping replaces a dead connection before use) or
    # through the worker's retry with backoff ("database unavailable" in its log); both must lose nothing.
