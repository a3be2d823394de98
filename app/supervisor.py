"""One worker process per GPU, supervised: what `mupredict worker --gpus all|0,1,…` runs.

Each child is an ordinary `mupredict worker` that sees one GPU (CUDA_VISIBLE_DEVICES holds its index,
so its `cuda` is that GPU and nothing else is allocated on the others). The supervisor restarts a child
that crashes (a non-zero exit or a signal: an out-of-memory kill, a driver fault), waiting longer after
each crash in a row; a child that exits 0 has finished (`--once` with an empty queue) and is not
restarted. SIGTERM or SIGINT is forwarded to every child, which hands its run in flight back to the
queue (app.worker), and the supervisor returns once they have all exited. The queue itself needs no
help from here: a child killed outright leaves a lease that expires and is reaped by the others.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0  # after a first crash; doubled per crash in a row
MAX_RESTART_DELAY_SECONDS = 60.0
HEALTHY_SECONDS = 60.0  # a child that ran this long before crashing starts the count over
MAX_CRASHES_IN_A_ROW = 5  # then the slot is given up (a GPU that is gone, a broken install)
POLL_SECONDS = 0.2


class NoGpus(ValueError):
    """`--gpus` named no usable GPU; the message says what to do."""


def parse_gpus(spec: str, visible: int) -> list[int]:
    """`all` or a comma-separated list of GPU indices, checked against the `visible` GPUs."""
    if spec.strip() == "all":
        if visible == 0:
            raise NoGpus(
                "--gpus all: no GPU is visible (check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES); "
                "on a CPU machine run `mupredict worker --device cpu`"
            )
        return list(range(visible))
    try:
        indices = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise NoGpus(f"--gpus {spec!r}: give `all` or GPU indices such as 0,1,3") from None
    if not indices or len(set(indices)) != len(indices):
        raise NoGpus(f"--gpus {spec!r}: give `all` or distinct GPU indices such as 0,1,3")
    outside = [i for i in indices if not 0 <= i < visible]
    if outside:
        raise NoGpus(f"--gpus {spec!r}: GPU {outside[0]} does not exist (visible: 0 to {visible - 1})")
    return indices


@dataclass(frozen=True)
class Slot:
    """One child: its name in the logs, its `--device`, and what it adds to the environment."""

    name: str
    device: str
    env: dict[str, str] = field(default_factory=dict)


def gpu_slots(indices: Sequence[int], visible: str | None = None) -> list[Slot]:
    """One slot per GPU, each child seeing only its own GPU. `indices` count the GPUs this process
    sees: under CUDA_VISIBLE_DEVICES=4,5 (`visible`), index 1 is GPU 5."""
    ids = [part.strip() for part in visible.split(",")] if visible else None
    return [Slot(f"gpu{i}", "cuda", {"CUDA_VISIBLE_DEVICES": ids[i] if ids else str(i)}) for i in indices]


@dataclass
class _Child:
    slot: Slot
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    crashes: int = 0  # in a row
    restart_at: float = 0.0
    finished: bool = False
    gave_up: bool = False


class Supervisor:
    """Runs `worker_args` once per slot as `python -m app worker … --device D --worker-id ID-NAME`."""

    def __init__(self, slots: Sequence[Slot], worker_args: Sequence[str] = (), worker_id: str | None = None):
        if not slots:
            raise ValueError("a supervisor needs at least one slot")
        self.children = [_Child(slot) for slot in slots]
        self.worker_args = list(worker_args)
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}"
        self.stopping = threading.Event()

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: FrameType | None) -> None:
            log.info("supervisor: signal %d, stopping every worker (their runs go back to the queue)", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    @property
    def gave_up(self) -> list[str]:
        """The slots abandoned after MAX_CRASHES_IN_A_ROW crashes."""
        return [child.slot.name for child in self.children if child.gave_up]

    def run(self) -> int:
        """Supervise until stopped or every child has finished; returns the number of restarts."""
        restarts = 0
        for child in self.children:
            self._start(child)
        while not self.stopping.is_set():
            now = time.monotonic()
            for child in self.children:
                restarts += self._tend(child, now)
            if all(child.finished for child in self.children):
                break
            self.stopping.wait(POLL_SECONDS)
        self._stop_all()
        return restarts

    def _command(self, child: _Child) -> list[str]:
        worker_id = f"{self.worker_id}-{child.slot.name}"
        return [sys.executable, "-m", "app", "worker", *self.worker_args, "--device", child.slot.device,
                "--worker-id", worker_id]  # fmt: skip

    def _start(self, child: _Child) -> None:
        env = {**os.environ, **child.slot.env}
        child.process = subprocess.Popen(self._command(child), env=env)
        child.started = time.monotonic()
        log.info("supervisor: worker %s started (pid %d)", child.slot.name, child.process.pid)

    def _tend(self, child: _Child, now: float) -> int:
        """Restart `child` when it has crashed and its delay has passed; returns 1 on a restart."""
        if child.finished:
            return 0
        if child.process is None:  # waiting out a restart delay
            if now >= child.restart_at:
                self._start(child)
                return 1
            return 0
        code = child.process.poll()
        if code is None:
            return 0
        if code == 0:
            log.info("supervisor: worker %s finished", child.slot.name)
            child.finished = True
            return 0
        child.crashes = 1 if now - child.started >= HEALTHY_SECONDS else child.crashes + 1
        if child.crashes >= MAX_CRASHES_IN_A_ROW:
            log.error(
                "supervisor: worker %s exited with %s, its %d crash in a row within %.0f s of starting; "
                "giving up on it (see its log above)",
                child.slot.name,
                _describe(code),
                child.crashes,
                HEALTHY_SECONDS,
            )
            child.process, child.finished, child.gave_up = None, True, True
            return 0
        delay = min(MAX_RESTART_DELAY_SECONDS, RESTART_DELAY_SECONDS * 2 ** (child.crashes - 1))
        log.warning(
            "supervisor: worker %s exited with %s; restarting in %.0f s",
            child.slot.name,
            _describe(code),
            delay,
        )
        child.process, child.restart_at = None, now + delay
        return 0

    def _stop_all(self) -> None:
        live = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)  # each hands its run in flight back, then exits
        for process in live:
            process.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
