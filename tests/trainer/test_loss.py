"""The chunked loss: the same value and gradients as one cross-entropy over all logits, used by `train`
only when a micro-batch's logits would be large (issue 21 point 4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.trainer.helpers import tiny_spec
from trainer import Corpus, train
from trainer.loss import LOGIT_BYTES, chunk_tokens, chunked_cross_entropy


def test_chunks_give_the_loss_and_gradients_of_the_whole() -> None:
    torch.manual_seed(0)
    features = torch.randn(37, 16, requires_grad=True)  # 37 tokens: the last chunk is short
    readout = torch.randn(1000, 16, requires_grad=True)
    targets = torch.randint(0, 1000, (37,))
    whole = F.cross_entropy(F.linear(features, readout), targets)
    grads = torch.autograd.grad(whole, (features, readout))
    chunked = chunked_cross_entropy(features, readout, targets, chunk=8)
    chunked_grads = torch.autograd.grad(chunked, (features, readout))
    assert chunked.item() == pytest.approx(whole.item(), rel=1e-6)
    for a, b in zip(grads, chunked_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_only_large_logits_are_chunked() -> None:
    assert chunk_tokens(8 * 64, 256) is None  # the proxies' usual case: 1 MB of logits
    chunk = chunk_tokens(16 * 1024, 128_256)  # Llama 3's vocabulary: 21 GB of logits whole
    assert chunk is not None and chunk * 128_256 * LOGIT_BYTES <= 64 * 1024**2


def test_train_chunks_large_logits_and_trains_the_same(
    builtin_corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train(tiny_spec(), 32, steps=8, corpus=builtin_corpus, log_every=1)
    used: list[int | None] = []
    real = chunk_tokens

    def recording(tokens: int, vocab_size: int) -> int | None:
        used.append(real(tokens, vocab_size))
        return used[-1]

    # A budget of one chunk's worth: the tiny byte-level proxy's logits count as large.
    monkeypatch.setattr("trainer.loss.LOGITS_BUDGET_BYTES", 1)
    monkeypatch.setattr("trainer.loss.CHUNK_BYTES", 40 * 256 * LOGIT_BYTES)  # 40 tokens per chunk
    monkeypatch.setattr("trainer.loss.chunk_tokens", recording)
    chunked = train(tiny_spec(), 32, steps=8, corpus=builtin_corpus, log_every=1)
    assert used == [40]
    assert [loss for _, loss in chunked.loss_curve] == pytest.approx(
        [loss for _, loss in whole.loss_curve], rel=1e-4
    )
    assert chunked.val_loss == pytest.approx(whole.val_loss, rel=1e-5)
