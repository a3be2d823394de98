"""Every μP rule of the trainer, in one file, each next to its source.

Notation: m = width / base_width, per matrix fan_in / base_fan_in; m_L = n_layers / base_depth;
α = depth_alpha (0 width-only μP, ½ Depth-μP, 1 CompleteP). At the base shape m = m_L = 1 and every
multiplier below is 1, so μP is exactly the base model with the spec's constants (σ, α_in, α_out,
α_attn, base LR).

Sources cited below:
  [mup]       microsoft/mup — optim.py (MuAdam: `lr /= width_mult` for matrix-like parameters),
              layer.py (`MuReadout`: logits × output_mult / width_mult), README (zero-init query and
              readout, attention 1/d instead of 1/√d).
  [TP-V]      Yang et al. 2022, Tensor Programs V, Table 8 (μP for Adam) and Table 3 (SP).
  [TP-VI]     Yang et al. 2023, Tensor Programs VI (arXiv 2310.02244; Depth-μP): branches × L^(−½) and
              Adam LR × L^(−½) (§1 Eq. (1) and Table 1); in general branches × L^(−α), LR × L^(−γ), stable
              and nontrivial iff α ≥ ½ and α + γ = 1 (§7, Claims 7.1–7.2), i.e. CompleteP's LR rule; with
              one matrix per block (trainer/model.py SingleBlock), α = γ = ½ is the optimum (Claim 7.5).
  [CompleteP] Dey et al. 2025, Table 1: the α-family — branches × m_L^(−α), hidden Adam LR
              × m_L^(α−1), Adam ε × m_N^(−1) m_L^(−α), norm-gain LR × m_L^(α−1). Its reference code
              (EleutherAI/nanoGPT-mup, branch completep, `configure_optimizers`, fix of 2025-01-19
              after Mlodozeniec et al. 2025, arXiv 2512.22382) gives embeddings, the readout and the
              final norm ε × m_N^(−1), and every in-block group ε × m_N^(−1) m_L^(−α) (its Eq. 40).
  [Lingle]    Lingle 2024, "A large-scale exploration of μ-transfer": trainable gains hurt transfer;
              independent weight decay.
  [Everett]   Everett et al. 2024, "Scaling exponents across parameterizations and optimizers": Adam ε
              must shrink with width or it dominates the second moment of wide layers.

Pitfalls from microsoft/mup issues that shape this file: multipliers are plain Python floats (tensor
attributes are lost by torch.compile); the LR schedule scales each group's LR relatively
(torch's LambdaLR multiplies each group's own initial LR); `init_parameters` runs after the
framework's init so nothing overwrites it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from trainer import ngpt_rules
from trainer.spec import ArchitectureSpec

Role = Literal["embedding", "position", "hidden", "readout", "block_gain", "final_gain"]


@dataclass(frozen=True)
class ForwardMultipliers:
    """The constant multipliers in the forward pass (plain floats, so torch.compile keeps them)."""

    embedding: float  # token (+ position) embeddings × α_in                         [mup; TP-V Table 8]
    residual: float  # each residual branch × m_L^(−α)                              [TP-VI; CompleteP]
    attention: float  # q·k × α_attn / d_head under μP, 1/√d_head under SP           [mup README]
    logits: float  # readout output × α_out / m under μP, × α_out under SP          [mup MuReadout]


@dataclass(frozen=True)
class ParameterRule:
    """How one parameter is initialised and optimised."""

    role: Role
    init_std: float  # std of the normal init; 0 = zero init; gains are set to 1 instead
    lr_mult: float  # this parameter's Adam LR = base LR × lr_mult
    eps_mult: float  # this parameter's Adam ε = base ε × eps_mult
    weight_decay: bool  # matrices decay, gains do not


def width_mult(spec: ArchitectureSpec, width: int) -> float:
    """m = width / base_width."""
    return width / spec.parametrization.base_width


def depth_mult(spec: ArchitectureSpec) -> float:
    """m_L = n_layers / base_depth."""
    return spec.n_layers / spec.base_depth


def forward_multipliers(spec: ArchitectureSpec, width: int) -> ForwardMultipliers:
    p = spec.parametrization
    if p.mode == "sp":
        # SP [TP-V Table 3]: no width or depth corrections; the usual 1/√d_head attention scale.
        return ForwardMultipliers(p.alpha_in, 1.0, 1.0 / math.sqrt(spec.head_dim), p.alpha_out)
    return ForwardMultipliers(
        embedding=p.alpha_in,  # constant in width [TP-V Table 8: input weights]
        residual=depth_mult(spec) ** (-p.depth_alpha),  # [CompleteP Table 1; TP-VI for α = ½]
        # With a fixed head size 1/d_head vs 1/√d_head is a constant factor; 1/d_head keeps q·k Θ(1)
        # once q and k align during training [mup README].
        attention=spec.attention_multiplier / spec.head_dim,
        logits=p.alpha_out / width_mult(spec, width),  # [mup layer.py MuReadout: / width_mult]
    )


def parameter_role(name: str) -> Role:
    """Which parameter group (a row of `multipliers`' rules below) a parameter of trainer.model.GPT is in."""
    if name == "wte.weight":
        return "embedding"
    if name == "wpe.weight":
        return "position"
    if name == "lm_head.weight":
        return "readout"
    if name == "norm_f.weight":
        return "final_gain"
    if name.startswith("blocks.") and any(f".{norm}." in name for norm in ("norm1", "norm2", "norm")):
        return "block_gain"
    hidden = ("qkv.weight", "out.weight", "up.weight", "down.weight", "perceptron.linear.weight")
    if name.startswith("blocks.") and name.endswith(hidden):
        return "hidden"
    raise ValueError(f"parameter {name!r} has no μP rule: add it to trainer/mup.py parameter_role")


def fan_in_mult(spec: ArchitectureSpec, width: int, name: str) -> float:
    """Per-matrix m = fan_in / base_fan_in [mup: infshape.width_mult() is the fan-in ratio]."""
    if name.endswith("down.weight"):  # the FFN down projection reads the FFN hidden units
        return spec.ffn_hidden(width) / spec.ffn_hidden(spec.parametrization.base_width)
    return width_mult(spec, width)


def parameter_rule(spec: ArchitectureSpec, width: int, name: str) -> ParameterRule:
    """Init std, LR multiplier and ε multiplier of one parameter, each rule with its source above."""
    p = spec.parametrization
    role = parameter_role(name)
    sigma, alpha = p.init_std, p.depth_alpha
    # Adam ε. Under μP the readout's 1/m multiplier makes every gradient Θ(1/m) per coordinate (the
    # backward signal into the residual stream is W_outᵀ·dlogits / m), so every group's ε shrinks by 1/m
    # or it dominates √v in wide models [Everett]; in-block groups also sit behind the m_L^(−α) branch
    # multiplier, so their gradients and ε shrink by it too [CompleteP Table 1 and its reference code's
    # ε fix]. Under SP one ε for all, as in PyTorch.
    m_width, m_depth = width_mult(spec, width), depth_mult(spec)
    outer_eps = 1.0 / m_width  # embeddings, readout, final norm
    block_eps = m_depth ** (-alpha) / m_width  # in-block gains (hidden matrices: per fan-in, below)
    if role in ("block_gain", "final_gain"):
        # Gains start at 1 in both modes. Block gains: LR × m_L^(α−1) [CompleteP Table 1];
        # the final norm sits outside the residual stack: LR × 1 [CompleteP Table 1].
        if p.mode == "sp":
            return ParameterRule(role, 1.0, 1.0, 1.0, weight_decay=False)
        if role == "block_gain":
            return ParameterRule(role, 1.0, m_depth ** (alpha - 1), block_eps, weight_decay=False)
        return ParameterRule(role, 1.0, 1.0, outer_eps, weight_decay=False)
    if p.mode == "sp":
        # SP [TP-V Table 3]: embeddings σ; matrices (readout included) σ ∝ 1/√fan_in, calibrated to σ
        # at the base width like PyTorch's default init; one global LR and ε.
        std = (
            sigma if role in ("embedding", "position") else sigma / math.sqrt(fan_in_mult(spec, width, name))
        )
        return ParameterRule(role, std, 1.0, 1.0, weight_decay=True)
    if role in ("embedding", "position"):
        # Input weights: init and Adam LR constant in width [mup optim.py: vector-like, LR unscaled;
        # TP-V Table 8 "input weights & all biases"]; ε × 1/m [CompleteP reference code].
        return ParameterRule(role, sigma, 1.0, outer_eps, weight_decay=True)
    if role == "readout":
        # Zero init [mup README]; LR constant, the 1/m sits in the forward multiplier instead
        # [mup layer.py MuReadout]; ε × 1/m [CompleteP reference code].
        return ParameterRule(role, 0.0, 1.0, outer_eps, weight_decay=True)
    # Hidden matrices: init σ/√m ∝ 1/√fan_in [TP-V Table 8]; Adam LR × 1/m [mup optim.py MuAdam] and
    # × m_L^(α−1) [CompleteP Table 1; TP-VI §6.3 and Claim 7.2: LR η n^(−1) L^(−γ), γ = 1 − α, so
    # L^(−½) for Depth-μP]; Adam ε × 1/m × m_L^(−α) [CompleteP Table 1; Everett; TP-VI §6.1 and Def. 6.2(b):
    # the gradient of W^l, Θ(n^(−1) L^(−α)), is scaled to Θ(1) before Adam, which is ε × n^(−1) L^(−α)].
    # The initialisation does not change with depth: W^l ~ N(0, 1/n) at every L [TP-VI Definition 6.2(a)].
    m = fan_in_mult(spec, width, name)
    return ParameterRule(
        role,
        init_std=sigma / math.sqrt(m),
        lr_mult=m_depth ** (alpha - 1) / m,
        eps_mult=m_depth ** (-alpha) / m,
        weight_decay=True,
    )


@torch.no_grad()
def init_parameters(model: nn.Module, spec: ArchitectureSpec, width: int) -> None:
    """(Re)initialise every parameter by its rule; call after any framework init."""
    for name, param in model.named_parameters():
        rule = parameter_rule(spec, width, name)
        if rule.role in ("block_gain", "final_gain"):
            param.fill_(1.0)
        elif rule.init_std == 0.0:
            param.zero_()
        else:
            param.normal_(0.0, rule.init_std)
        if name.endswith("attn.qkv.weight") and spec.parametrization.mode == "mup":
            # Zero-init query [mup README]: the first `width` rows of the fused qkv projection are Q.
            param[:width].zero_()


def make_optimizer(
    model: nn.Module, spec: ArchitectureSpec, lr: float | None = None, steps: int | None = None
) -> torch.optim.AdamW:
    """AdamW with one parameter group per (role, LR, ε): μP per-group LRs, independent weight decay.

    `lr` overrides spec.training.lr (the base LR). Each group records its `role`. Weight decay is
    independent [Lingle]: torch's AdamW shrinks by lr_t × weight_decay, so each group stores
    weight_decay / peak_lr and the product is schedule_factor × spec.training.weight_decay at any width.
    Family "ngpt" takes its groups from trainer/ngpt_rules.py instead (νGPT's LRs depend on the run's
    `steps`, default spec.training.steps; no weight decay). Fused on CUDA.
    """
    t = spec.training
    base_lr = t.lr if lr is None else lr
    width = _model_width(model)
    groups: dict[tuple[str, float, float, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if spec.family == "ngpt":
            group = ngpt_rules.parameter_role(name)
            key: tuple[str, float, float, bool] = (
                group,
                ngpt_rules.lr_mult(spec, width, group, steps),
                1.0,
                False,
            )
        else:
            rule = parameter_rule(spec, width, name)
            key = (rule.role, rule.lr_mult, rule.eps_mult, rule.weight_decay)
        groups.setdefault(key, []).append(param)
    param_groups = []
    for (role, lr_mult, eps_mult, decays), params in groups.items():
        group_lr = base_lr * lr_mult
        param_groups.append(
            {
                "params": params,
                "role": role,
                "lr": group_lr,
                "eps": t.adam_eps * eps_mult,
                "weight_decay": t.weight_decay / group_lr if decays else 0.0,
            }
        )
    fused = all(p.is_cuda for p in model.parameters())
    return torch.optim.AdamW(param_groups, lr=base_lr, betas=t.betas, fused=fused)


def _model_width(model: nn.Module) -> int:
    width = getattr(model, "width", None)
    if not isinstance(width, int):
        raise TypeError("make_optimizer needs a model from trainer.build_model (it reads model.width)")
    return width
