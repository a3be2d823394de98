"""Checkpoints: a run resumed from its state at step k is the uninterrupted run; bad files say so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer.helpers import tiny_spec
from trainer import Corpus, train
from trainer.checkpoint import CheckpointError, TrainState, load_state, save_state


def test_resuming_from_a_saved_checkpoint_reproduces_the_uninterrupted_run(
    builtin_corpus: Corpus, tmp_path: Path
) -> None:
    spec = tiny_spec(training={"warmup_fraction": 0.2, "schedule": "cosine"})  # the LR moves every step
    straight = train(spec, 32, steps=16, seed=3, corpus=builtin_corpus, log_every=1)
    saved: list[TrainState] = []
    train(spec, 32, steps=16, seed=3, corpus=builtin_corpus, checkpoint_at={7}, on_checkpoint=saved.append)
    assert [state.step for state in saved] == [7]
    save_state(tmp_path / "run.pt", saved[0])
    resumed = train(
        spec,
        32,
        steps=16,
        seed=3,
        corpus=builtin_corpus,
        resume_from=load_state(tmp_path / "run.pt"),
        log_every=1,
    )
    assert resumed.steps == straight.steps == 16
    # Every step's loss, the first 7 carried over. Bitwise equal here; a CPU library may round one
    # matmul differently with another memory alignment (seen: 1e-6), while a wrong batch, LR or
    # optimizer state moves a loss by 1e-3 or more.
    assert [step for step, _ in resumed.loss_curve] == list(range(1, 17))
    assert [loss for _, loss in resumed.loss_curve] == pytest.approx(
        [loss for _, loss in straight.loss_curve], rel=1e-5
    )
    assert resumed.val_loss == pytest.approx(straight.val_loss, rel=1e-5)


def test_a_checkpoint_is_a_copy_taken_at_its_step(builtin_corpus: Corpus) -> None:
    saved: list[TrainState] = []
    train(tiny_spec(), 16, steps=8, corpus=builtin_corpus, checkpoint_at={2, 5}, on_checkpoint=saved.append)
    early, later = saved
    assert (early.step, later.step) == (2, 5) and len(early.losses) == 2 and len(later.losses) == 5
    changed = [name for name in early.model if not torch.equal(early.model[name], later.model[name])]
    assert changed  # training went on after the first checkpoint without touching its copy
    assert all(tensor.device.type == "cpu" for tensor in early.model.values())


def test_a_checkpoint_of_another_run_is_refused(builtin_corpus: Corpus) -> None:
    saved: list[TrainState] = []
    train(
        tiny_spec(), 16, steps=4, seed=1, corpus=builtin_corpus, checkpoint_at={2}, on_checkpoint=saved.append
    )
    with pytest.raises(CheckpointError, match=r"another run: seed 1 \(asked: 2\)"):
        train(tiny_spec(), 16, steps=4, seed=2, corpus=builtin_corpus, resume_from=saved[0])
    with pytest.raises(CheckpointError, match=r"width 16 \(asked: 32\)"):
        train(tiny_spec(), 32, steps=4, seed=1, corpus=builtin_corpus, resume_from=saved[0])


def test_missing_and_corrupt_checkpoints_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state(tmp_path / "absent.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 half a zip file")
    with pytest.raises(CheckpointError, match=r"cut\.pt is unreadable"):
        load_state(tmp_path / "cut.pt")


def test_saving_is_atomic(builtin_corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[TrainState] = []
    train(tiny_spec(), 16, steps=3, corpus=builtin_corpus, checkpoint_at={3}, on_checkpoint=saved.append)
    path = tmp_path / "run.pt"
    save_state(path, saved[0])
    before = path.read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("trainer.checkpoint.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, saved[0])
    assert path.read_bytes() == before  # the old checkpoint is intact ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # ... and no temporary file is left
