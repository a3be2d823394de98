"""The GPT proxy: a decoder-only, pre-norm transformer whose every hidden dimension scales with width.

Width is d_model. The head size is fixed, so n_heads = width / head_dim grows with width, and the FFN
hidden size is round(ffn_ratio × width): μP needs every hidden dimension to grow together. All μP
behaviour lives in trainer/mup.py; this file only multiplies by the floats it hands over.

spec.block picks the residual block: `Block` (attention and MLP branches, two matrices each) or
`SingleBlock` (one branch of one width × width matrix, no attention: Tensor Programs VI's block depth 1,
the case where it proves Depth-μP optimal). With "single" each token is processed on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer import mup
from trainer.spec import ArchitectureSpec

NORM_EPS = 1e-5
ROPE_BASE = 10000.0


def scaled(x: torch.Tensor, multiplier: float) -> torch.Tensor:
    """x × multiplier, skipping the elementwise pass when the multiplier is 1 (the base shape, SP)."""
    return x if multiplier == 1.0 else x * multiplier


class Norm(nn.Module):
    """LayerNorm or RMSNorm over the last dimension, with an optional trainable gain (never a bias)."""

    def __init__(self, kind: str, dim: int, gain: bool) -> None:
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(dim)) if gain else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "layernorm":
            return F.layer_norm(x, (x.size(-1),), self.weight, None, NORM_EPS)
        return F.rms_norm(x, (x.size(-1),), self.weight, NORM_EPS)


def rotary_tables(context_length: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles, each (T, head_dim / 2)."""
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(context_length, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i + hd/2}) of x (B, nh, T, hd) by the position's angle."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hd/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # keep bf16 under autocast
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, head_dim: int, scale: float) -> None:
        super().__init__()
        self.n_head = width // head_dim
        self.scale = scale  # α_attn / d_head under μP (trainer/mup.py)
        self.qkv = nn.Linear(width, 3 * width, bias=False)  # rows [0:C] are Q, zero-init under μP
        self.out = nn.Linear(width, width, bias=False)

    def heads(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v, each (B, nh, T, hd), with the rotary embedding applied to q and k."""
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        if rope is not None:
            cos, sin = rope[0][:T], rope[1][:T]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def logits(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """The scaled attention logits q·k × scale, (B, nh, T, T), for the coordinate check
        (the forward never materialises them)."""
        q, k, _ = self.heads(x, rope)
        return (q @ k.transpose(-2, -1)) * self.scale

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.heads(x, rope)  # (B, nh, T, hd) each
        # Flash attention on CUDA; the explicit scale replaces SDPA's default 1/√hd.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.out(y)


def activate(h: torch.Tensor, activation: str) -> torch.Tensor:
    """φ elementwise: 'gelu', 'relu2' (squared ReLU) or 'abs' (|x|). Even φ such as |x| make φ'(h) = sign(h)
    decorrelate the gradients of neighbouring blocks, which maximises feature diversity (Tensor Programs
    VI, §8.3). SwiGLU is gated, so MLP applies it itself."""
    if activation == "relu2":
        return F.relu(h).square()
    if activation == "abs":
        return h.abs()
    return F.gelu(h)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.activation = activation
        # SwiGLU's gate and value halves share one matmul: (C) -> (2H).
        self.up = nn.Linear(width, 2 * hidden if activation == "swiglu" else hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)  # (B, T, H) or (B, T, 2H)
        if self.activation == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = activate(h, self.activation)
        return self.down(h)  # (B, T, C)


class Block(nn.Module):
    def __init__(self, spec: ArchitectureSpec, width: int, multipliers: mup.ForwardMultipliers) -> None:
        super().__init__()
        self.residual = multipliers.residual  # m_L^(−α): keeps the residual stream Θ(1) in depth
        self.norm1 = Norm(spec.norm, width, spec.norm_gains)
        self.attn = CausalSelfAttention(width, spec.head_dim, multipliers.attention)
        self.norm2 = Norm(spec.norm, width, spec.norm_gains)
        self.mlp = MLP(width, spec.ffn_hidden(width), spec.activation)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        x = x + scaled(self.attn(self.norm1(x), rope), self.residual)  # (B, T, C)
        x = x + scaled(self.mlp(self.norm2(x)), self.residual)  # (B, T, C)
        return x


class Perceptron(nn.Module):
    """Tensor Programs VI's residual branch of block depth 1: MS(φ(W h)), one width × width matrix and no
    bias (§6.3 and the §10.2 experiments). φ comes after the matrix: the pre-nonlinearity form W φ(h)
    learns far less with depth (§8.2). MS, mean subtraction across the width, removes the mean of φ,
    which for |x|, squared ReLU or GELU is positive and would pile up over the L blocks (§6.3)."""

    def __init__(self, width: int, activation: str) -> None:
        super().__init__()
        self.activation = activation
        self.linear = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = activate(self.linear(x), self.activation)  # (B, T, C)
        return h - h.mean(dim=-1, keepdim=True)  # (B, T, C)


class SingleBlock(nn.Module):
    """x + m_L^(−α) · MS(φ(W · norm(x))): TP-VI's x^l = x^(l−1) + a L^(−α) MS(φ(W^l x^(l−1))) (§10.2; its
    Eq. (1) for α = ½), with a = 1 and L / base_depth for L, and the pre-norm of its LayerNorm experiments
    (§10.2, Fig. 12: LN on x^(l−1) before W^l, MS kept after φ). No attention, so no mixing across tokens."""

    def __init__(self, spec: ArchitectureSpec, width: int, multipliers: mup.ForwardMultipliers) -> None:
        super().__init__()
        self.residual = multipliers.residual  # m_L^(−α) (trainer/mup.py)
        self.norm = Norm(spec.norm, width, spec.norm_gains)
        self.perceptron = Perceptron(width, spec.activation)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        del rope  # positions only matter to attention, which this block has not
        return x + scaled(self.perceptron(self.norm(x)), self.residual)  # (B, T, C)


class GPT(nn.Module):
    """tokens (B, T) -> logits (B, T, V)."""

    def __init__(self, spec: ArchitectureSpec, width: int) -> None:
        super().__init__()
        multipliers = mup.forward_multipliers(spec, width)
        self.width = width  # read by make_optimizer for the per-matrix width multipliers
        self.embedding_mult = multipliers.embedding  # α_in
        self.logit_mult = multipliers.logits  # α_out / m under μP
        self.wte = nn.Embedding(spec.vocab_size, width)
        self.wpe = nn.Embedding(spec.context_length, width) if spec.positions == "learned" else None
        block = SingleBlock if spec.block == "single" else Block
        self.blocks = nn.ModuleList(block(spec, width, multipliers) for _ in range(spec.n_layers))
        self.norm_f = Norm(spec.norm, width, spec.norm_gains)
        self.lm_head = None if spec.tie_embeddings else nn.Linear(width, spec.vocab_size, bias=False)
        if spec.positions == "rope":
            cos, sin = rotary_tables(spec.context_length, spec.head_dim)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            self.rope_cos = self.rope_sin = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.linear(self.features(tokens), self.readout_weight)  # (B, T, V)

    @property
    def readout_weight(self) -> torch.Tensor:
        """(V, C): the token embedding when tied, else the untied readout."""
        return self.wte.weight if self.lm_head is None else self.lm_head.weight

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The readout's input (B, T, C), its multiplier applied: logits = F.linear(features, readout)."""
        T = tokens.size(1)
        x = self.wte(tokens)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=tokens.device))  # (B, T, C)
        x = scaled(x, self.embedding_mult)
        rope = None if self.rope_cos is None else (self.rope_cos, self.rope_sin)
        for block in self.blocks:
            x = block(x, rope)  # (B, T, C)
        x = self.norm_f(x)
        # Scaling the (B, T, C) input instead of the (B, T, V) logits is the same product, cheaper.
        return scaled(x, self.logit_mult)  # (B, T, C)


def build_model(spec: ArchitectureSpec, width: int) -> GPT:
    """The spec's model at `width`, initialised by the μP (or SP) rules, or for family "ngpt" the
    normalized transformer (trainer/ngpt.py, same interface); seed torch before calling."""
    spec.validate_width(width)
    if spec.family == "ngpt":
        from trainer import ngpt  # imports this module's rotary helpers

        normalized = ngpt.NGPT(spec, width)
        ngpt.init_parameters(normalized, spec, width)
        return normalized  # type: ignore[return-value]
    model = GPT(spec, width)
    mup.init_parameters(model, spec, width)
    return model
