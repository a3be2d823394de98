"""trainer.train: the RunResult contract, progress, stopping, divergence, reproducibility."""

from __future__ import annotations

import itertools
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.trainer.helpers import tiny_spec
from trainer import Corpus, CorpusError, Progress, RunResult, TrainingStopped, count_params, train
from trainer.accounting import flops_per_token
from trainer.checkpoint import TrainState
from trainer.train import _curve, _divergence, lr_factor


@pytest.fixture(scope="module")
def tiny_run(builtin_corpus: Corpus) -> RunResult:
    return train(tiny_spec(), 32, seed=0, corpus=builtin_corpus, device="cpu")


def test_result_carries_the_contract(tiny_run: RunResult, builtin_corpus: Corpus) -> None:
    spec = tiny_spec()
    result = tiny_run.to_dict()
    assert set(result) == {f.name for f in fields(RunResult)}
    assert result["status"] == "succeeded" and result["reason"] is None
    assert result["steps"] == 20 and result["tokens"] == 20 * 256
    assert (result["n_params"], result["n_params_non_embedding"]) == count_params(spec, 32)
    assert result["flops"] == flops_per_token(spec, 32) * result["tokens"]
    assert result["device"] == "cpu" and result["mfu"] is None
    assert result["corpus_fingerprint"] == builtin_corpus.fingerprint
    assert result["code_version"].startswith("trainer-")
    assert result["tokens_per_second"] > 0 and result["wall_seconds"] > 0
    assert [step for step, _ in result["loss_curve"]] == list(range(1, 21))
    # It learned: from ln 256 ≈ 5.55 nats at the (zero-init readout) start to clearly below.
    assert result["loss_curve"][0][1] == pytest.approx(math.log(256), abs=1e-3)
    assert result["final_train_loss"] < 4.5 and result["val_loss"] < 4.5


def test_reproducible_from_a_seed(tiny_run: RunResult, builtin_corpus: Corpus) -> None:
    again = train(tiny_spec(), 32, seed=0, corpus=builtin_corpus, device="cpu")
    assert again.loss_curve == tiny_run.loss_curve and again.val_loss == tiny_run.val_loss
    other = train(tiny_spec(), 32, seed=1, corpus=builtin_corpus, device="cpu")
    assert other.loss_curve != tiny_run.loss_curve


def test_the_batch_order_has_its_own_seed(
    tiny_run: RunResult, builtin_corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two initialisations on one batch order see the same windows; another order sees others; the
    default order is the init seed's."""
    assert tiny_run.data_seed == tiny_run.seed == 0
    seen: list[np.ndarray] = []
    sample = Corpus.sample_batch

    def recording(self: Corpus, *args: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = sample(self, *args)
        seen.append(x)
        return x, y

    monkeypatch.setattr(Corpus, "sample_batch", recording)
    runs = {}
    for seed, data_seed in ((0, None), (1, 0), (0, 5)):
        seen.clear()
        runs[seed, data_seed] = train(
            tiny_spec(), 32, steps=4, seed=seed, data_seed=data_seed, corpus=builtin_corpus, device="cpu"
        )
        runs[seed, data_seed].batches = np.stack(seen)  # type: ignore[attr-defined]
    default, same_order, other_order = runs.values()
    assert (same_order.seed, same_order.data_seed) == (1, 0)
    assert np.array_equal(default.batches, same_order.batches)  # type: ignore[attr-defined]
    assert not np.array_equal(default.batches, other_order.batches)  # type: ignore[attr-defined]
    assert same_order.loss_curve != default.loss_curve != other_order.loss_curve  # the inits differ


def test_progress_reports_and_steps_override(builtin_corpus: Corpus) -> None:
    seen: list[Progress] = []
    result = train(tiny_spec(), 16, steps=25, corpus=builtin_corpus, progress=seen.append, log_every=10)
    assert [p.step for p in seen] == [10, 20, 25]
    assert all(p.total_steps == 25 and p.tokens_per_second > 0 and math.isfinite(p.loss) for p in seen)
    assert result.steps == 25


def test_should_stop_raises_training_stopped(builtin_corpus: Corpus) -> None:
    calls = []

    def stop_at_third_step() -> bool:
        calls.append(1)
        return len(calls) == 3

    with pytest.raises(TrainingStopped, match="stopped at step 2 of 20"):
        train(tiny_spec(), 16, corpus=builtin_corpus, should_stop=stop_at_third_step)


def test_divergence_is_a_result_not_a_crash(builtin_corpus: Corpus) -> None:
    spec = tiny_spec(training={"lr": 10.0, "grad_clip": 0.0, "warmup_fraction": 0.0})
    result = train(spec, 32, corpus=builtin_corpus)
    assert result.status == "diverged"
    assert result.reason and ("blew up" in result.reason or "became" in result.reason)
    assert result.val_loss is None and result.final_train_loss is None
    assert result.to_dict()["status"] == "diverged"


def test_divergence_rules() -> None:
    assert _divergence([5.5, 5.0, 4.0], 0) is None
    assert "became nan" in (_divergence([5.5, float("nan")], 0) or "")
    assert "became inf" in (_divergence([5.5, 5.0, float("inf")], 1) or "")
    assert "blew up" in (_divergence([5.5, 4.0, 12.0], 1) or "")


def test_the_loss_curve_is_finite_when_the_losses_are_not() -> None:
    # What a run that diverged to NaN or inf has read; a NaN point reached the client as null.
    assert _curve([5.5, 5.0, math.nan]) == [(1, 5.5), (2, 5.0)]
    assert _curve([5.5, math.inf, 4.0]) == [(1, 5.5), (3, 4.0)]
    long = [5.0] * 390 + [math.nan] * 10  # windows of 2 steps: the last five hold a NaN
    curve = _curve(long)
    assert len(curve) == 195 and curve[-1] == (390, 5.0)
    assert all(math.isfinite(loss) for _, loss in curve)


def test_schedules_scale_the_learning_rate_relatively() -> None:
    cosine = tiny_spec(training={"warmup_fraction": 0.1, "min_lr_ratio": 0.1})
    factors = [lr_factor(cosine, s, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    wsd = tiny_spec(training={"schedule": "wsd", "warmup_fraction": 0.1, "decay_fraction": 0.2})
    factors = [lr_factor(wsd, s, 100) for s in range(100)]
    assert factors[10:80] == [1.0] * 70
    assert factors[-1] == pytest.approx(1 / 20)


def test_trains_on_a_local_text_file_named_by_the_spec(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    result = train(tiny_spec(dataset={"source": str(text)}), 16, steps=5)
    assert result.status == "succeeded" and result.steps == 5
    with pytest.raises(CorpusError, match="does not exist"):
        train(tiny_spec(dataset={"source": str(tmp_path / "missing.txt")}), 16, steps=5)


def test_bad_width_and_steps_are_value_errors(builtin_corpus: Corpus) -> None:
    with pytest.raises(ValueError, match="not a multiple of head size 8"):
        train(tiny_spec(), 20, corpus=builtin_corpus)
    with pytest.raises(ValueError, match="at least 1"):
        train(tiny_spec(), 16, steps=0, corpus=builtin_corpus)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_path_bf16_fused_adamw_compile(builtin_corpus: Corpus) -> None:
    # compile left to its default: on for CUDA.
    result = train(tiny_spec(), 32, steps=10, device="cuda", corpus=builtin_corpus)
    assert result.status == "succeeded" and result.device.startswith("cuda")
    assert result.val_loss is not None and result.val_loss < math.log(256)
    assert result.mfu is None or 0 < result.mfu < 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_micro_batches_and_resume_match_the_plain_run(builtin_corpus: Corpus) -> None:
    """Accumulation and a resumed fused-AdamW state on the GPU give the run of one pass (bf16: close)."""
    spec, cuda = tiny_spec(), {"device": "cuda", "corpus": builtin_corpus, "compile": False}  # compiled above
    whole = train(spec, 32, steps=12, micro_batch=8, log_every=1, **cuda)
    split = train(spec, 32, steps=12, micro_batch=2, log_every=1, **cuda)
    saved: list[TrainState] = []
    train(spec, 32, steps=12, checkpoint_at={6}, on_checkpoint=saved.append, **cuda)
    resumed = train(spec, 32, steps=12, resume_from=saved[0], log_every=1, **cuda)
    for run in (split, resumed):
        assert [loss for _, loss in run.loss_curve] == pytest.approx(
            [loss for _, loss in whole.loss_curve], rel=2e-2
        )
