"""A training run's state at a step boundary, and its storage: the hook that resumes and branches use.

`train(..., checkpoint_at=..., on_checkpoint=...)` hands a `TrainState` to the caller at the steps it
asks for; `train(..., resume_from=state)` continues from one and reproduces the uninterrupted run
(the batches of step k depend on (data_seed, k) alone: trainer.batches). `save_state` writes a state
atomically (a temporary name in the same folder, then a rename), so a reader never finds half a file;
`load_state` names the file and the fix when one is missing or unreadable.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or belongs to another run; the message says which and why."""


@dataclass
class TrainState:
    """Everything train() needs to continue after `step` optimizer steps (tensors on the CPU)."""

    step: int
    total_steps: int  # the run's planned length: with warmup_steps, its LR schedule (train.lr_factor)
    warmup_steps: int
    width: int
    seed: int
    data_seed: int
    lr: float
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    losses: list[float] = field(default_factory=list)  # the training loss of every step so far

    def check_matches(self, *, width: int, seed: int, data_seed: int, lr: float) -> None:
        """Raise CheckpointError unless this state continues a run of this shape, seeds and LR (train()
        checks the LR schedule besides)."""
        wanted = {"width": width, "seed": seed, "data_seed": data_seed, "lr": lr}
        held = {name: getattr(self, name) for name in wanted}
        differ = [
            f"{name} {held[name]} (asked: {wanted[name]})" for name in wanted if held[name] != wanted[name]
        ]
        if differ:
            raise CheckpointError(f"the checkpoint belongs to another run: {', '.join(differ)}")
        if not 0 < self.step <= self.total_steps:
            raise CheckpointError(f"the checkpoint's step {self.step} is outside 1..{self.total_steps}")


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(item) for item in value)
    return value


def capture(
    step: int,
    total_steps: int,
    warmup_steps: int,
    *,
    width: int,
    seed: int,
    data_seed: int,
    lr: float,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    losses: list[float],
) -> TrainState:
    """A copy of the run's state on the CPU, safe to keep while training goes on."""
    return TrainState(
        step=step,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        width=width,
        seed=seed,
        data_seed=data_seed,
        lr=lr,
        model=_to_cpu(model.state_dict()),
        optimizer=_to_cpu(optimizer.state_dict()),
        schedule=dict(schedule.state_dict()),
        losses=list(losses),
    )


def save_state(path: Path, state: TrainState) -> None:
    """Write `state` to `path` atomically: a crash leaves the old file or none, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(state.__dict__, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> TrainState:
    """The state saved at `path`; CheckpointError (with the path) when it is missing or unreadable."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: its run must be trained again")
    try:
        # weights_only: a checkpoint is data, never code to run (torch.load's pickle would run it).
        fields = torch.load(path, map_location="cpu", weights_only=True)
        return TrainState(**fields)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}): train its run again"
        ) from exc
