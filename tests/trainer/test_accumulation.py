"""Gradient accumulation: a batch split into micro-batches trains the same model as one pass over it."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.trainer.helpers import tiny_spec
from trainer import Corpus, train
from trainer.memory import activation_bytes_per_token, micro_batch_size
from trainer.step import TrainStep


@pytest.mark.parametrize("micro_batch", [1, 2, 4])
def test_micro_batches_reproduce_the_whole_batch(builtin_corpus: Corpus, micro_batch: int) -> None:
    spec = tiny_spec()  # 8 sequences per step
    whole = train(spec, 32, steps=12, corpus=builtin_corpus, micro_batch=8, log_every=1)
    split = train(spec, 32, steps=12, corpus=builtin_corpus, micro_batch=micro_batch, log_every=1)
    assert whole.val_loss is not None and split.val_loss is not None
    # Same batches, same mean gradient; only the summation order differs (fp32 on the CPU).
    for (step_a, loss_a), (step_b, loss_b) in zip(whole.loss_curve, split.loss_curve, strict=True):
        assert step_a == step_b and loss_b == pytest.approx(loss_a, rel=1e-4)
    assert split.val_loss == pytest.approx(whole.val_loss, rel=1e-4)


def test_a_micro_batch_must_divide_the_batch(builtin_corpus: Corpus) -> None:
    with pytest.raises(ValueError, match="micro_batch 3 must divide the batch of 8 sequences"):
        train(tiny_spec(), 16, steps=2, corpus=builtin_corpus, micro_batch=3)


def test_the_micro_batch_is_the_largest_divisor_that_fits_the_budget() -> None:
    spec = tiny_spec(training={"batch_tokens": 32 * 12})  # 12 sequences of 32 tokens
    per_sequence = activation_bytes_per_token(spec, 32, half_precision=True) * spec.context_length
    assert micro_batch_size(spec, 32, None, half_precision=True) == 12  # no budget: the whole batch
    assert micro_batch_size(spec, 32, 100 * per_sequence, half_precision=True) == 12
    assert micro_batch_size(spec, 32, 5.5 * per_sequence, half_precision=True) == 4  # 5 does not divide 12
    assert micro_batch_size(spec, 32, 1.0 * per_sequence, half_precision=True) == 1
    assert micro_batch_size(spec, 32, 0.0, half_precision=True) == 1  # the floor: one sequence at a time


def test_the_activation_estimate_grows_with_the_shape() -> None:
    base = tiny_spec(n_layers=2)
    at = activation_bytes_per_token
    assert at(base, 64, half_precision=True) > at(base, 32, half_precision=True)  # width
    assert at(tiny_spec(n_layers=4), 32, half_precision=True) > at(base, 32, half_precision=True)  # depth
    assert at(base, 32, half_precision=False) > at(base, 32, half_precision=True)  # fp32 on a CPU
    swiglu = tiny_spec(n_layers=2, activation="swiglu")
    assert at(swiglu, 32, half_precision=True) > at(
        tiny_spec(n_layers=2, activation="gelu"), 32, half_precision=True
    )


def test_a_memory_budget_splits_the_batch_in_train(
    builtin_corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[int] = []

    class Recording(TrainStep):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            used.append(self.micro_batch)

    # sys.modules: the package attribute trainer.train is the function, not its module.
    monkeypatch.setattr(sys.modules["trainer.train"], "TrainStep", Recording)
    spec = tiny_spec()
    per_sequence = activation_bytes_per_token(spec, 32, half_precision=False) * spec.context_length
    whole = train(spec, 32, steps=6, corpus=builtin_corpus, log_every=1)
    budgeted = train(spec, 32, steps=6, corpus=builtin_corpus, memory_budget=2.5 * per_sequence, log_every=1)
    assert used == [8, 2]  # a CPU without a budget: the whole batch; 2.5 sequences' worth: 2
    assert [loss for _, loss in budgeted.loss_curve] == pytest.approx(
        [loss for _, loss in whole.loss_curve], rel=1e-4
    )


def test_the_activation_estimate_follows_the_block_and_the_family() -> None:
    at = activation_bytes_per_token
    transformer = tiny_spec(n_layers=4)
    single = tiny_spec(n_layers=4, block="single")
    # One width × width matrix and no attention keep far less than attention and a 4× MLP (at a width
    # where the layers, not the 256-entry readout, hold most of it).
    assert at(single, 256, half_precision=True) < at(transformer, 256, half_precision=True) / 2
    gpt = tiny_spec(n_layers=2, activation="swiglu", positions="rope")
    ngpt = tiny_spec(n_layers=2, family="ngpt", parametrization={"mode": "nugpt"})
    # nGPT normalises q, k, each branch and each update: more saved per layer than a pre-norm block.
    assert at(ngpt, 32, half_precision=True) > at(gpt, 32, half_precision=True)
