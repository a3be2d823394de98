"""The normalized transformer (family "ngpt"): nGPT (Loshchilov et al. 2025, arXiv 2410.01131) with the
scaling rules of trainer/ngpt_rules.py ("ngpt" or νGPT's "nugpt").

Every token embedding and every weight vector along d_model has unit norm (renormalised after each
optimizer step by `normalize_weights`), and so does the hidden state: each block moves it toward its
branch's (normalised) output by learned eigen learning rates and renormalises,
h ← Norm(h + |α_A| ⊙ (Norm(attn(h)) − h)), then likewise with α_M for the MLP [nGPT §2.6 items 1–3;
νGPT §2 Eqs. 1–4]. No norm layers, no weight decay, no warmup. Norm(y) = y / ‖y‖₂.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainer import ngpt_rules
from trainer.model import apply_rotary, rotary_tables
from trainer.spec import ArchitectureSpec

# Each matrix's unit vectors lie along d_model: (parameter-name suffix, the dimension normalised over) for
# torch's (out, in) storage [nGPT §2.6 item 2; NVIDIA/ngpt train.py normalize_matrices].
UNIT_DIMS = {
    "wte.weight": 1,  # (V, d): each token's embedding
    "lm_head.weight": 1,  # (V, d): each token's readout row
    "qkv.weight": 1,  # (3d, d): rows read h
    "out.weight": 0,  # (d, d): columns write into h
    "up.weight": 1,  # (2H, d): rows read h
    "down.weight": 0,  # (d, H): columns write into h
}


def unit(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Norm(x) = x / ‖x‖₂ along `dim` [nGPT §2; νGPT §2]. (A zero vector stays zero instead of NaN.)"""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(1e-12)


class NormalizedAttention(nn.Module):
    def __init__(self, spec: ArchitectureSpec, width: int) -> None:
        super().__init__()
        self.n_head, self.head_dim = width // spec.head_dim, spec.head_dim
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.s_qk = nn.Parameter(torch.empty(width))  # per head and head coordinate, shared by q and k

    def forward(
        self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], s_qk: torch.Tensor
    ) -> torch.Tensor:
        B, T, C = h.size()
        q, k, v = self.qkv(h).split(C, dim=2)  # (B, T, C) each
        q, k, v = (
            t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hd)
        cos, sin = rope[0][:T], rope[1][:T]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # RoPE, then normalise [νGPT §2 Eq. 6]
        scale_qk = s_qk.view(self.n_head, 1, self.head_dim)  # (nh, 1, hd)
        q, k = unit(q) * scale_qk, unit(k) * scale_qk  # [nGPT §2.3.2 Eq. 15-16]
        # Unit q and k have dot products of variance 1/d_k: the softmax scale is √d_k, not 1/√d_k
        # [nGPT §2.3.2, §2.6 item 4].
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=math.sqrt(self.head_dim))
        return self.out(y.transpose(1, 2).contiguous().view(B, T, C))  # (B, T, C)


class NormalizedMLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, 2 * hidden, bias=False)  # [u; ν]
        self.down = nn.Linear(hidden, width, bias=False)
        self.s_uv = nn.Parameter(torch.empty(2 * hidden))
        self.sqrt_width = math.sqrt(width)

    def forward(self, h: torch.Tensor, s_uv: torch.Tensor) -> torch.Tensor:
        u, nu = (self.up(h) * s_uv).chunk(2, dim=-1)  # (B, T, H) each
        # ‖h‖ = 1 leaves W h entries ~1/√d, where SiLU is linear: ν × √d_model [nGPT Eq. 20-21, App. A.1].
        return self.down(u * F.silu(nu * self.sqrt_width))  # (B, T, C)


class NormalizedBlock(nn.Module):
    def __init__(self, spec: ArchitectureSpec, width: int) -> None:
        super().__init__()
        self.attn = NormalizedAttention(spec, width)
        self.mlp = NormalizedMLP(width, spec.ffn_hidden(width))
        self.alpha_a = nn.Parameter(torch.empty(width))
        self.alpha_m = nn.Parameter(torch.empty(width))

    def forward(
        self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], f: dict[str, float]
    ) -> torch.Tensor:
        # |α| keeps the eigen learning rates non-negative [νGPT §2; NVIDIA/ngpt model.py uses abs()].
        a = (self.alpha_a * f["alpha_a"]).abs()
        h = unit(h + a * (unit(self.attn(h, rope, self.attn.s_qk * f["s_qk"])) - h))  # [nGPT Eq. 10]
        m = (self.alpha_m * f["alpha_m"]).abs()
        return unit(h + m * (unit(self.mlp(h, self.mlp.s_uv * f["s_uv"])) - h))  # [nGPT Eq. 11]


class NGPT(nn.Module):
    """tokens (B, T) -> logits (B, T, V); the same interface as trainer.model.GPT."""

    def __init__(self, spec: ArchitectureSpec, width: int) -> None:
        super().__init__()
        self.width = width
        self.wte = nn.Embedding(spec.vocab_size, width)
        self.blocks = nn.ModuleList(NormalizedBlock(spec, width) for _ in range(spec.n_layers))
        self.lm_head = nn.Linear(width, spec.vocab_size, bias=False)  # untied [nGPT §2.1]
        self.s_z = nn.Parameter(torch.empty(spec.vocab_size))
        # Plain floats (torch.compile keeps them): what each stored scaling vector is multiplied by.
        self.factors = {
            name: ngpt_rules.scaler_rule(spec, width, name).factor
            for name in ("alpha_a", "alpha_m", "s_qk", "s_uv", "s_z")
        }
        cos, sin = rotary_tables(spec.context_length, spec.head_dim)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.linear(self.features(tokens), self.readout_weight)  # (B, T, V)

    @property
    def readout_weight(self) -> torch.Tensor:
        """(V, C): z = s_z ⊙ (E_out h) [nGPT §2.1 Eq. 3], as one matrix for the chunked loss."""
        return self.lm_head.weight * (self.s_z * self.factors["s_z"]).unsqueeze(1)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.wte(tokens)  # (B, T, C), unit rows
        rope = (self.rope_cos, self.rope_sin)
        for block in self.blocks:
            h = block(h, rope, self.factors)  # (B, T, C), unit norm
        return h  # no final norm: h is on the sphere already [nGPT §2.6 item 1]


@torch.no_grad()
def normalize_weights(model: nn.Module) -> None:
    """Put every matrix's vectors back on the unit sphere along d_model (after each optimizer step and at
    init, nGPT §2.6 item 2). Computed in fp32 [NVIDIA/ngpt train.py]."""
    for name, param in model.named_parameters():
        for suffix, dim in UNIT_DIMS.items():
            if name.endswith(suffix):
                param.copy_(unit(param.float(), dim=dim).to(param.dtype))


def renormaliser(model: nn.Module, spec: ArchitectureSpec) -> Callable[[], None] | None:
    """What follows each optimizer step (trainer/step.py): for family "ngpt", `normalize_weights`."""
    if spec.family != "ngpt":
        return None
    return lambda: normalize_weights(model)


@torch.no_grad()
def init_parameters(model: NGPT, spec: ArchitectureSpec, width: int) -> None:
    """Matrices: any init, then normalised (νGPT §3.1: the variance is arbitrary); scaling vectors: their
    stored value s_scale (trainer/ngpt_rules.py)."""
    for name, param in model.named_parameters():
        short = name.split(".")[-1]
        if short in model.factors:
            param.fill_(ngpt_rules.scaler_rule(spec, width, short).scale)  # type: ignore[arg-type]
        else:
            param.normal_(0.0, 1.0)
    normalize_weights(model)
