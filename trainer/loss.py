"""The next-token loss, optionally chunked so its memory does not grow with batch × vocabulary.

A proxy with a large vocabulary (50,257 for GPT-2, 128,256 for Llama 3) at a small width spends most
of its memory on the logits: B × T × V values, kept in bf16 and fp32 with their gradient. The chunked
loss computes the readout and the cross-entropy a slice of tokens at a time under activation
checkpointing (torch.utils.checkpoint): the backward pass recomputes each slice's logits instead of
keeping them, so at most one slice's logits exist at once. The cost is one more readout matmul
forward per step; the loss and its gradients are the same up to summation order.

`loss_for` picks the loss a run trains and evaluates with: training and the validation loss go
through the same function, so neither holds a large vocabulary's whole logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from trainer.model import GPT

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (inputs, targets) (B, T) -> mean loss

LOGIT_BYTES = 10  # per logit, B × T × V of them: bf16 logits, their fp32 copy, the fp32 gradient
LOGITS_BUDGET_BYTES = 256 * 1024**2  # past this per micro-batch, the loss is chunked
CHUNK_BYTES = 64 * 1024**2  # the logits of one chunk


def chunk_tokens(tokens: int, vocab_size: int) -> int | None:
    """Tokens per chunk for a micro-batch of `tokens`, or None when its logits fit the budget whole."""
    if tokens * vocab_size * LOGIT_BYTES <= LOGITS_BUDGET_BYTES:
        return None
    return max(1, CHUNK_BYTES // (vocab_size * LOGIT_BYTES))


def _chunk_loss(features: torch.Tensor, readout: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(features, readout).float(), targets, reduction="sum")


def chunked_cross_entropy(
    features: torch.Tensor, readout: torch.Tensor, targets: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Mean cross-entropy of F.linear(features, readout) against targets: features (N, C), readout
    (V, C), targets (N,), `chunk` tokens at a time (see the module doc)."""
    total = features.new_zeros((), dtype=torch.float32)
    for start in range(0, features.size(0), chunk):
        part = slice(start, start + chunk)
        total = total + checkpoint(_chunk_loss, features[part], readout, targets[part], use_reentrant=False)
    return total / features.size(0)


def logits_loss(forward: Callable[[torch.Tensor], torch.Tensor]) -> LossFn:
    """Mean cross-entropy over all of forward(x)'s logits (B, T, V), in fp32."""

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(forward(x).float().flatten(0, 1), y.flatten())

    return loss


def loss_for(
    model: GPT, forward: Callable[[torch.Tensor], torch.Tensor], tokens: int, compiling: bool
) -> LossFn:
    """The loss for micro-batches of `tokens` tokens: chunked when their logits would be large, else
    the cross-entropy over `forward` (the model, compiled or not)."""
    chunk = chunk_tokens(tokens, model.readout_weight.size(0))
    if chunk is None:
        return logits_loss(forward)
    features = torch.compile(model.features) if compiling else model.features

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return chunked_cross_entropy(features(x).flatten(0, 1), model.readout_weight, y.flatten(), chunk)

    return loss
