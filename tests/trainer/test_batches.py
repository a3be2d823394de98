"""Batches: step k's windows depend on (data_seed, k) alone, and the prefetch thread changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer import Corpus
from trainer.batches import Prefetcher, batch_rng


def test_the_prefetcher_yields_each_steps_own_batch(builtin_corpus: Corpus) -> None:
    cpu = torch.device("cpu")
    with Prefetcher(builtin_corpus, 7, 4, 32, cpu, start=5, stop=9) as batches:
        got = list(batches)
    assert len(got) == 4
    for step, (x, y) in zip(range(5, 9), got, strict=True):
        want_x, want_y = builtin_corpus.sample_batch(batch_rng(7, step), 4, 32)
        assert np.array_equal(x.numpy(), want_x) and np.array_equal(y.numpy(), want_y)
    other_seed = builtin_corpus.sample_batch(batch_rng(8, 5), 4, 32)[0]
    assert not np.array_equal(got[0][0].numpy(), other_seed)


def test_asking_past_the_last_step_is_an_error(builtin_corpus: Corpus) -> None:
    with Prefetcher(builtin_corpus, 0, 2, 16, torch.device("cpu"), stop=1) as batches:
        batches.next()
        with pytest.raises(IndexError, match="all 1 batches"):
            batches.next()


def test_an_error_while_sampling_reaches_the_training_loop(builtin_corpus: Corpus) -> None:
    too_long = len(builtin_corpus.train) + 10  # no window of this length exists
    prefetcher = Prefetcher(builtin_corpus, 0, 2, too_long, torch.device("cpu"), stop=3)
    with prefetcher, pytest.raises(ValueError):
        prefetcher.next()


def test_leaving_early_stops_the_thread(builtin_corpus: Corpus) -> None:
    prefetcher = Prefetcher(builtin_corpus, 0, 2, 16, torch.device("cpu"), stop=1000, depth=2)
    with prefetcher:
        prefetcher.next()
    assert not prefetcher._thread.is_alive()
