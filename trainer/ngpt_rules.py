"""Every rule of the normalized transformer (family "ngpt"), in one file, each next to its source: the
sibling of trainer/mup.py for the two parametrizations of that family.

  "ngpt"   the original nGPT scaling (Loshchilov et al. 2025, ICLR, arXiv 2410.01131): one global LR for
           every parameter; each scaling vector s is stored at s_scale and used as s · s_init / s_scale,
           with s_scale = 1/√d_model for α_A, α_M, s_qk and s_z, so their effective LR grows as √d_model.
  "nugpt"  νGPT (Shigida, Hanin & Gromov 2026, arXiv 2604.27077, §3.1, the six rules of its Table 1):
           LRs × m_data^(−1/3) (the horizon), the input embedding × m_width^(−1/2), hidden matrices and the
           readout × m_width^(−3/4) (its "mid alignment", §3.2), the scaling vectors' scale a constant in
           width, α_init × m_depth^(−1), and s_z,init × m_width^(1/2) (§4.4, Lemma 6.8: logits Θ(1)).

Notation as in trainer/mup.py: m_width = width / base_width, m_depth = n_layers / base_depth, and
m_data = steps / base_steps (the run's horizon against the base one). At the base shape and horizon
every multiplier is 1 and "nugpt" equals "ngpt" exactly: νGPT's rule 5 fixes the scale at 0.03, about
1/√d at its base width of 1,020 (§4); this file fixes it at 1/√base_width instead, so that the two
parametrizations coincide at the base (the issue's contrast), and leaves out rule 4's optional tuned
×½ on the readout LR for the same reason.

Not width- or depth-scaled in either: Adam's ε (νGPT §4 uses a tiny constant, 1e-16, instead of scaling
it; set training.adam_eps), weight decay (none: nGPT §2.6 item 7) and warmup (none, same item).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from trainer.spec import ArchitectureSpec

Role = Literal["embedding", "hidden", "readout", "scaler"]
Scaler = Literal["alpha_a", "alpha_m", "s_qk", "s_uv", "s_z"]

ALPHA_INIT = 0.05  # eigen learning rates α_A, α_M at init: "order of 1/n_layers" [nGPT §2.6 item 3]


@dataclass(frozen=True)
class ScalerRule:
    """A scaling vector s: stored at `scale`, used as s · init / scale [nGPT §2.5; νGPT §2]. Adam moves
    the stored s by about the LR per step, so the used value moves by LR · init / scale."""

    init: float
    scale: float

    @property
    def factor(self) -> float:
        """What the stored vector is multiplied by in the forward pass."""
        return self.init / self.scale


def width_mult(spec: ArchitectureSpec, width: int) -> float:
    return width / spec.parametrization.base_width


def depth_mult(spec: ArchitectureSpec) -> float:
    return spec.n_layers / spec.base_depth


def data_mult(spec: ArchitectureSpec, steps: int | None) -> float:
    """m_data = steps / base_steps (the spec's own steps when not given)."""
    base = spec.parametrization.base_steps or spec.training.steps
    return (steps if steps is not None else spec.training.steps) / base


def scaler_rule(spec: ArchitectureSpec, width: int, name: Scaler) -> ScalerRule:
    """init and scale of one scaling vector at `width`."""
    nu = spec.parametrization.mode == "nugpt"
    # nGPT: s_scale = 1/√d_model for α_A, α_M, s_qk, s_z [nGPT §2.6 items 3, 4, 6; NVIDIA/ngpt train.py
    # base_scale = 1/√n_embd]; νGPT: a constant in width [νGPT §3.1 rule 5], 1/√base_width here (see above).
    scale = 1.0 / math.sqrt(spec.parametrization.base_width if nu else width)
    if name in ("alpha_a", "alpha_m"):
        # νGPT: α_init × m_depth^(−1) [§3.1 rule 6]; nGPT: 0.05 [§2.6 item 3].
        return ScalerRule(ALPHA_INIT / depth_mult(spec) if nu else ALPHA_INIT, scale)
    if name == "s_qk":
        return ScalerRule(1.0, scale)  # [nGPT §2.6 item 4; νGPT §3.1 rule 5, Lemma 6.6: init constant]
    if name == "s_uv":
        return ScalerRule(1.0, 1.0)  # s_u, s_ν: init 1, scale 1 in both [nGPT §2.6 item 5; νGPT §3.1]
    # s_z: νGPT keeps the logits Θ(1) at init, which takes s_z,init ∝ √d_model [§4.4, Lemma 6.8, §7.5].
    return ScalerRule(math.sqrt(width_mult(spec, width)) if nu else 1.0, scale)


def parameter_role(name: str) -> Role:
    """The LR group of a parameter of trainer.ngpt.NGPT."""
    if name == "wte.weight":
        return "embedding"
    if name == "lm_head.weight":
        return "readout"
    if name.endswith(("qkv.weight", "out.weight", "up.weight", "down.weight")):
        return "hidden"
    if name.split(".")[-1] in ("alpha_a", "alpha_m", "s_qk", "s_uv", "s_z"):
        return "scaler"
    raise ValueError(f"parameter {name!r} has no nGPT rule: add it to trainer/ngpt_rules.py parameter_role")


def lr_mult(spec: ArchitectureSpec, width: int, role: Role, steps: int | None = None) -> float:
    """This group's Adam LR = base LR × lr_mult."""
    if spec.parametrization.mode == "ngpt":
        return 1.0  # one global LR for every parameter [nGPT §2.6; NVIDIA/ngpt model.py configure_optimizers]
    horizon = data_mult(spec, steps) ** (-1 / 3)  # [νGPT §3.1 rule 1, §3.3: Bjorck et al. 2025's −1/3]
    m = width_mult(spec, width)
    if role == "embedding":
        return horizon * m ** (-1 / 2)  # one column moves per token: Θ(1) needs d^(−1/2) [§3.1 rule 2, §3.2]
    if role in ("hidden", "readout"):
        return horizon * m ** (-3 / 4)  # mid alignment, max(α, ν) = 3/4 with ω = 1/2 [§3.1 rule 3, §3.2]
    return horizon  # the raw scaling vectors' LR is left unscaled [§6.1, Assumption 6.2]
