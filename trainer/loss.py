"""The next-token loss, optionally chunked so its memory does not grow with batch × vocabulary.

A proxy with a large vocabulary (50,257 for GPT-2, 128,256 for Llama 3) at a small width spends most
of its memory on the logits: B × T × V values, kept in bf16 and fp32 with their gradient. The chunked
loss computes the readout and the cross-entropy a slice of tokens at a time under activation
checkpointing (torch.utils.checkpoint): the backward pass recomputes each slice's logits instead of
keeping them, so at most one slice's logits exist at once. The cost is one more readout matmul
forward per step; the loss and its gradients are the same up to summation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

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
