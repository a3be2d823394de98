"""What `Client.wait_for` and `wait_for_tuning` show while they poll: bars on a terminal, lines on a pipe.

On a terminal, one rich bar per key (the sweep, and each run while it trains, with its tokens/s and the
server's ETA). When the output is piped (a log file, a CI job, `| tee`), rich draws nothing live, so the
same statuses are printed as plain lines whenever they changed, at most every `every` seconds and once
at the end.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from app.schemas import RunSummary

ACTIVE = ("queued", "running")


class Board:
    def __init__(self, enabled: bool = True, console: Console | None = None, every: float = 10.0) -> None:
        self.console = console or Console()
        self.enabled, self.every = enabled, every
        self.live = enabled and self.console.is_terminal
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.live,
        )
        self._tasks: dict[Hashable, TaskID] = {}
        self._lines: dict[Hashable, str] = {}
        self._printed: dict[Hashable, str] = {}
        self._last_print = float("-inf")

    def __enter__(self) -> Board:
        self._bars.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._bars.__exit__(kind, error, trace)

    def has(self, key: Hashable) -> bool:
        return key in self._tasks or key in self._lines

    def show(
        self,
        key: Hashable,
        description: str,
        completed: float,
        total: float | None,
        status: str,
        *,
        visible: bool = True,
    ) -> None:
        """Set one bar (or, on a pipe, one line): `visible=False` retires a run that finished."""
        if self.live:
            if key not in self._tasks:
                self._tasks[key] = self._bars.add_task(description, total=total, status=status)
            self._bars.update(
                self._tasks[key], description=description, completed=completed, total=total,
                status=status, visible=visible,
            )  # fmt: skip
            return
        share = f" {completed / total:.0%}" if total else ""
        # A run that finished is printed once more, with its outcome.
        self._lines[key] = f"{description.strip()}:{share if visible else ''} {status}"

    def flush(self, *, final: bool = False) -> None:
        """On a pipe: print the lines that changed, if `every` seconds passed (always when `final`)."""
        if self.live or not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last_print < self.every:
            return
        changed = {k: line for k, line in self._lines.items() if self._printed.get(k) != line}
        for key, line in changed.items():
            self.console.print(line, highlight=False, soft_wrap=True)
            self._printed[key] = line
        if changed:
            self._last_print = now


def run_status(run: RunSummary) -> str:
    """A training run's throughput and time left, or its status once it is not training."""
    if run.status != "running":
        return run.status
    parts = []
    if run.tokens_per_second:
        parts.append(f"{run.tokens_per_second:,.0f} tok/s")
    if run.eta_seconds is not None:
        parts.append(f"ETA {duration(run.eta_seconds)}")
    return " · ".join(parts) or "starting"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def sweep_bars(board: Board, sweep: Any) -> None:
    """The sweep's overall bar over training steps, and one bar per run while it trains."""
    total = sum(r.steps for r in sweep.runs)
    done = sum(r.progress_step if r.status in ACTIVE else r.steps for r in sweep.runs)
    c = sweep.counts
    board.show(
        ("sweep", sweep.id),
        f"sweep {sweep.id}",
        done,
        total,
        f"{c.succeeded} done · {c.running} running · {c.queued} queued"
        + (f" · {c.failed} failed" if c.failed else ""),
    )
    for r in sweep.runs:
        key = ("run", r.id)
        if r.status == "running" or board.has(key):
            steps = r.progress_total or r.steps
            training = r.status in ACTIVE
            board.show(
                key,
                f"  run {r.id} · width {r.width} · seed {r.seed}",
                r.progress_step if training else steps,
                steps,
                run_status(r),
                visible=training,
            )
