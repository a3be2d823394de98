"""A plain PyTorch GPT with no μP in it: the yardstick for trainer/model.py.

Same shapes and parameter names as trainer.model.GPT, so a state dict moves between the two, but
written the way a reader expects a nanoGPT-style model: nn.LayerNorm / nn.RMSNorm, nn.Linear,
SDPA with its default 1/√d_head scale, no multipliers, PyTorch's default init. Two uses:

- tests/trainer/test_mup.py: at the base shape (m = m_L = 1, α_in = α_out = 1, α_attn = √d_head)
  μP must equal this model exactly, forward and under one plain AdamW;
- bench/trainer_throughput.py: tokens/s of the μP model against this one, same shape, same run.

Learned positions only: rotary embeddings would have to reuse trainer/model.py's code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.model import MLP
from trainer.spec import ArchitectureSpec


def _norm(spec: ArchitectureSpec, width: int) -> nn.Module:
    if spec.norm == "layernorm":
        return nn.LayerNorm(width, eps=1e-5, elementwise_affine=spec.norm_gains, bias=False)
    return nn.RMSNorm(width, eps=1e-5, elementwise_affine=spec.norm_gains)


class PlainAttention(nn.Module):
    def __init__(self, width: int, head_dim: int) -> None:
        super().__init__()
        self.n_head = width // head_dim
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
            for t in self.qkv(x).split(C, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        return self.out(y.transpose(1, 2).contiguous().view(B, T, C))  # (B, T, C)


class PlainBlock(nn.Module):
    def __init__(self, spec: ArchitectureSpec, width: int) -> None:
        super().__init__()
        self.norm1 = _norm(spec, width)
        self.attn = PlainAttention(width, spec.head_dim)
        self.norm2 = _norm(spec, width)
        self.mlp = MLP(width, spec.ffn_hidden(width), spec.activation)  # no μP multiplier inside: shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # (B, T, C)
        return x + self.mlp(self.norm2(x))  # (B, T, C)


class PlainGPT(nn.Module):
    """tokens (B, T) -> logits (B, T, V), standard parametrization, no multipliers."""

    def __init__(self, spec: ArchitectureSpec, width: int) -> None:
        super().__init__()
        if spec.positions != "learned":
            raise ValueError("the plain reference model has learned positions only: set positions 'learned'")
        spec.validate_width(width)
        self.wte = nn.Embedding(spec.vocab_size, width)
        self.wpe = nn.Embedding(spec.context_length, width)
        self.blocks = nn.ModuleList(PlainBlock(spec, width) for _ in range(spec.n_layers))
        self.norm_f = _norm(spec, width)
        self.lm_head = None if spec.tie_embeddings else nn.Linear(width, spec.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.size(1), device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        x = self.norm_f(x)
        readout = self.wte.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, readout)  # (B, T, V)
