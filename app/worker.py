"""The worker loop: claim a queued proxy run, train it, store the result; survive the database going away.

One worker owns one device. Any number of workers, on any machines, share one database; the queue's
conditional updates (app/queue.py) keep them from stepping on each other. A heartbeat thread renews the
lease and writes progress while the main thread trains; if the lease is lost (the worker was presumed
dead and its run handed to another), training stops and the result is discarded. SIGTERM hands the run
in flight back to the queue and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

import trainer
from app import queue, resume_queue, tuning
from app.checkpoints import CheckpointStore
from app.db import make_engine, session_factory
from app.fits import DEFAULT_LAW, GRID_LAW, refresh_fit
from app.limits import corpus_access
from app.models import RunRole
from app.run_errors import source_of, stored_error
from app.settings import Settings
from app.wakeup import Wakeup
from trainer.checkpoint import CheckpointError
from trainer.upscale import WarmStart

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database stayed unreachable while the worker was stopping."""


# Errors that another attempt would repeat: a missing, empty, too small or too large corpus, or one outside
# this worker's data roots (trainer.CorpusError), a stored spec that no longer validates. Such a run fails
# at once with the reason, instead of being retried max_attempts times.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (trainer.CorpusError, ValidationError)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        device: str | None = None,
        worker_id: str | None = None,
        poll_seconds: float = 2.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.settings = settings
        self.device = device or settings.device  # an explicit --device wins over MUPREDICT_DEVICE
        self.worker_id = worker_id or default_worker_id()
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.engine = make_engine(settings.database_url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.stopping = threading.Event()
        self.corpus_access = corpus_access(settings)  # this worker's data roots and caps, not the API's
        self._last_reap = float("-inf")
        self.wakeup = Wakeup(self.engine, self.stopping)  # LISTEN/NOTIFY on PostgreSQL, else polling
        self.checkpoints = CheckpointStore(settings.artifact_dir)  # token-horizon trunks' states

    # -- database access that survives restarts and terminated connections -------------------------

    def _db(self, operation: Callable[[Session], T], what: str) -> T:
        """Run one unit of work, retrying with exponential backoff while the database is unreachable.

        Every operation is a conditional update keyed on the lease, so repeating one after a dropped
        connection is safe. Once the worker is stopping it gives up instead: the lease then expires
        and the reaper hands the run to another worker, so nothing is lost.
        """
        delay = 0.5
        while True:
            try:
                with self.sessions() as session:
                    return operation(session)
            except DBAPIError as exc:
                if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
                    raise
                if self.stopping.is_set():
                    raise DatabaseUnavailable(f"{what}: {exc.orig}") from exc
                log.warning("%s: database unavailable (%s); retrying in %.1fs", what, exc.orig, delay)
                self.engine.dispose()  # drop every pooled connection: after a restart they are all dead
                self.stopping.wait(delay)
                delay = min(delay * 2, self.max_backoff_seconds)

    # -- the loop ----------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s: signal %d, handing the run in flight back", self.worker_id, signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def run(self, *, once: bool = False, max_runs: int | None = None) -> int:
        """Process runs until stopped; `once` returns when the queue is empty. Returns runs processed."""
        done = 0
        self.wakeup.start()  # before the first claim: a run queued after an empty claim still wakes us
        try:
            while not self.stopping.is_set() and (max_runs is None or done < max_runs):
                self._reap_now_and_then()
                claimed = self._db(
                    lambda s: queue.claim(s, self.worker_id, self.settings.lease_seconds), "claim"
                )
                if claimed is None:
                    # Idle: finish any tuning whose runs are all done but was never advanced (its
                    # worker died in between, or a run failed for good). That may queue new runs.
                    if self._db(tuning.advance_stalled, "advance tunings"):
                        continue
                    if once:
                        break
                    self.wakeup.wait(self.poll_seconds)
                    continue
                self.process(claimed)
                done += 1
        except DatabaseUnavailable as exc:
            log.warning("worker %s: stopping with the database unreachable (%s)", self.worker_id, exc)
        finally:
            self.wakeup.close()
            self.engine.dispose()
        return done

    def _reap_now_and_then(self) -> None:
        """Requeue expired leases, at most every quarter lease (not before every claim: with many
        workers polling an idle queue that was an UPDATE per worker per poll). An expired lease is then
        reaped at most a quarter of a lease late, by whichever worker looks first."""
        now = time.monotonic()
        if now - self._last_reap < self.settings.lease_seconds / 4:
            return
        self._last_reap = now
        self._db(
            lambda s: queue.reap_expired(
                s, self.settings.max_attempts, backoff_seconds=self.settings.retry_backoff_seconds
            ),
            "reap",
        )
        self._db(resume_queue.settle_orphans, "settle branches")  # of trunks that failed meanwhile

    def process(self, claimed: queue.ClaimedRun) -> None:
        log.info(
            "worker %s: run %s (width %d, depth %d, seed %d, lr %g)",
            self.worker_id,
            claimed.id,
            claimed.width,
            claimed.depth,
            claimed.seed,
            claimed.lr,
        )
        beat = _Heartbeat(self, claimed)
        beat.start()
        try:
            spec = trainer.ArchitectureSpec.model_validate(claimed.spec).at_depth(claimed.depth)
            result = trainer.train(
                spec,
                claimed.width,
                seed=claimed.seed,
                data_seed=claimed.data_seed,
                steps=claimed.steps,
                lr=claimed.lr,
                device=self.device,
                compile=self.settings.compile,
                memory_budget=_gib(self.settings.gpu_memory_gb),
                corpus_access=self.corpus_access,
                progress=beat.on_progress,
                should_stop=lambda: self.stopping.is_set() or beat.lease_lost.is_set(),
                **self._segment(claimed),
            )
        except CheckpointError as exc:
            # The checkpoint it resumes from is missing, unreadable or from another schedule: the run
            # that writes it trains again (resume_queue.checkpoint_lost) and this one waits for it.
            beat.stop()
            lost = str(exc)
            log.warning("run %s: %s; the run that writes it is queued again", claimed.id, lost)
            self._db(
                lambda s: resume_queue.checkpoint_lost(
                    s, claimed.id, self.worker_id, lost, self.settings.max_attempts
                ),
                "requeue trunk",
            )
            return
        except trainer.TrainingStopped:
            beat.stop()
            if beat.lease_lost.is_set():
                log.warning(
                    "run %s: lease lost while training (cancelled or presumed dead); result discarded",
                    claimed.id,
                )
            else:
                self._db(lambda s: queue.release(s, claimed.id, self.worker_id), "hand back")
            return
        except PERMANENT_ERRORS as exc:
            beat.stop()
            log.error("run %s failed for good:\n%s", claimed.id, traceback.format_exc())
            reason = stored_error(exc, source_of(claimed.spec))
            # max_attempts 1: this attempt was the last one.
            self._db(lambda s: queue.fail(s, claimed.id, self.worker_id, reason, max_attempts=1), "fail")
            return
        except Exception as exc:
            beat.stop()
            log.error("run %s failed:\n%s", claimed.id, traceback.format_exc())
            error = stored_error(exc, source_of(claimed.spec))
            self._db(
                lambda s: queue.fail(
                    s,
                    claimed.id,
                    self.worker_id,
                    error,
                    self.settings.max_attempts,
                    backoff_seconds=self.settings.retry_backoff_seconds,
                ),
                "fail",
            )
            return
        beat.stop()
        payload = result.to_dict()
        if self._db(lambda s: queue.complete(s, claimed.id, self.worker_id, payload), "store result"):
            log.info(
                "run %s: stored (%s, val loss %s)", claimed.id, payload["status"], payload.get("val_loss")
            )
            self.after_result(claimed)

    def _segment(self, claimed: queue.ClaimedRun) -> dict[str, Any]:
        """train()'s arguments for runs that write or read checkpoints: a trunk stops at its last branch
        point and checkpoints at each; a branch resumes from its trunk's checkpoint; an upscaled run
        starts from its parent's final state, widened; a run others are upscaled from checkpoints its
        end. Loading raises CheckpointError when a checkpoint is missing or unreadable."""
        args: dict[str, Any] = {}
        if claimed.checkpoint_steps:
            args["checkpoint_at"] = set(claimed.checkpoint_steps)
            args["on_checkpoint"] = lambda state: self.checkpoints.save(claimed.id, state)
        if claimed.role == RunRole.trunk:
            args |= {"warmup_steps": claimed.warmup_steps, "stop_after": claimed.stop_step}
        elif claimed.role == RunRole.branch:
            assert claimed.parent_run_id is not None and claimed.resume_step is not None
            args |= {
                "warmup_steps": claimed.warmup_steps,
                "resume_from": self.checkpoints.load(claimed.parent_run_id, claimed.resume_step),
            }
        elif claimed.role == RunRole.upscaled:
            assert claimed.parent_run_id is not None and claimed.resume_step is not None
            state = self.checkpoints.load(claimed.parent_run_id, claimed.resume_step)
            args["warm_start"] = WarmStart(state, claimed.noise or 0.0)
        return args

    def _prune_checkpoints(self, session: Session, claimed: queue.ClaimedRun) -> None:
        """Remove the checkpoints every branch of the run's trunk has finished with."""
        trunk = claimed.id if claimed.role == RunRole.trunk else claimed.parent_run_id
        if claimed.role not in (RunRole.trunk, RunRole.branch) or trunk is None:
            return  # a final state that runs are upscaled from is kept (resume_queue.settled_checkpoints)
        steps, everything = resume_queue.settled_checkpoints(session, trunk)
        self.checkpoints.prune(trunk, steps, everything=everything)

    def after_result(self, claimed: queue.ClaimedRun) -> None:
        """Refit now, off the request path (predictions read the cached fit and never refit; a branch's
        result refits the (N, D) grid), and advance the tunings the run belongs to (they may queue their
        next grid points).

        The result is already stored; a failure here (say, data no law fits yet) is logged and retried
        later (the next prediction refits, the idle loop advances stalled tunings), and must never take
        the worker down with it.
        """
        # A token-horizon branch changes the (N, D) grid's fit, any other run the whole-run ladder's.
        law = GRID_LAW if claimed.role == RunRole.branch else DEFAULT_LAW
        steps: list[tuple[str, Callable[[Session], object]]] = [
            ("refit", lambda s: refresh_fit(s, claimed.architecture_id, self.settings.min_runs_for_fit, law)),
            ("advance tunings", lambda s: tuning.advance_for_run(s, claimed.id)),
            ("settle branches", resume_queue.settle_orphans),
            ("prune checkpoints", lambda s: self._prune_checkpoints(s, claimed)),
        ]
        for what, step in steps:
            try:
                self._db(step, what)
            except DatabaseUnavailable:
                raise
            except Exception:
                log.exception("run %s: %s failed; retried later", claimed.id, what)


class _Heartbeat(threading.Thread):
    """Renews the lease and writes progress every few seconds while the main thread trains."""

    def __init__(self, worker: Worker, claimed: queue.ClaimedRun) -> None:
        super().__init__(name=f"heartbeat-{claimed.id}", daemon=True)
        self.worker, self.claimed = worker, claimed
        self.interval = worker.settings.heartbeat_seconds
        self.lease_lost = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._latest: Any = None
        self._points: list[tuple[int, float]] = []

    def on_progress(self, progress: Any) -> None:
        with self._lock:
            self._latest = progress
            self._points.append((int(progress.step), float(progress.loss)))

    def run(self) -> None:
        while not self._done.wait(self.interval):
            with self._lock:
                latest, points, self._points = self._latest, self._points, []
            step = latest.step if latest is not None else 0
            total = latest.total_steps if latest is not None else self.claimed.steps
            loss = latest.loss if latest is not None else None
            speed = latest.tokens_per_second if latest is not None else None
            try:
                held = self.worker._db(self._renewal(step, total, loss, points, speed), "heartbeat")
            except DatabaseUnavailable:
                return  # stopping while the database is down: the lease will expire and be reaped
            if not held:
                self.lease_lost.set()
                return

    def _renewal(
        self,
        step: int,
        total: int,
        loss: float | None,
        points: list[tuple[int, float]],
        tokens_per_second: float | None,
    ) -> Callable[[Session], bool]:
        def renew(session: Session) -> bool:
            return queue.heartbeat(
                session,
                self.claimed.id,
                self.worker.worker_id,
                self.worker.settings.lease_seconds,
                step,
                total,
                loss,
                points,
                tokens_per_second,
            )

        return renew

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)


def _gib(gigabytes: float | None) -> float | None:
    return None if gigabytes is None else gigabytes * 2**30
