"""Where workers keep checkpoints: one folder per run under the artifact directory
(MUPREDICT_ARTIFACT_DIR), shared by every worker that may train a run resuming from it (a shared file
system or a mounted bucket across machines): a token-horizon trunk's state at each branch point, and
the final state of a run that upscaled runs start from. Files are written atomically
(trainer.checkpoint.save_state: a temporary name, then a rename); a trunk's are removed once every
branch that resumes from them has finished, a final state that runs are upscaled from is kept
(app.resume_queue.settled_checkpoints).

One artifact directory per database: folders are named by run id. Reading and writing states needs
torch; naming and removing folders does not, so the API process can drop a deleted architecture's."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.checkpoint import TrainState


class CheckpointStore:
    def __init__(self, artifact_dir: Path) -> None:
        self.root = artifact_dir.expanduser() / "checkpoints"

    def folder(self, trunk_id: int) -> Path:
        return self.root / f"run-{trunk_id}"

    def path(self, trunk_id: int, step: int) -> Path:
        return self.folder(trunk_id) / f"step-{step:09d}.pt"

    def save(self, trunk_id: int, state: TrainState) -> None:
        from trainer.checkpoint import save_state

        save_state(self.path(trunk_id, state.step), state)

    def load(self, trunk_id: int, step: int) -> TrainState:
        """The trunk's state at `step`; trainer.CheckpointError (naming the file) if missing or unreadable."""
        from trainer.checkpoint import load_state

        return load_state(self.path(trunk_id, step))

    def prune(self, trunk_id: int, steps: list[int], *, everything: bool = False) -> None:
        """Remove the checkpoints at `steps` (or the trunk's whole folder): their branches are stored."""
        if everything:
            shutil.rmtree(self.folder(trunk_id), ignore_errors=True)
            return
        for step in steps:
            self.path(trunk_id, step).unlink(missing_ok=True)

    def drop(self, run_ids: Iterable[int]) -> None:
        """Remove every checkpoint of these runs (their architecture was deleted)."""
        for run_id in run_ids:
            shutil.rmtree(self.folder(run_id), ignore_errors=True)
