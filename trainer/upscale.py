"""μP upscaling: widen a trained proxy k-fold with its function intact, and carry its Adam state along.

Ma et al. 2026, "μpscaling small models: principled warm starts and hyperparameter transfer" (arXiv
2602.10545; §2 "Equivalent models of different widths", App. C for the equivalence and its optimizer
conditions, App. D for the algorithm; the authors' code, yuxinma98/mupscaling, transfer.py and
optim.py), under this project's μP (trainer/mup.py):

- Copy. Every width unit is copied k times. A matrix that reads width (or FFN) units then sees each
  input k times, so its fan-in is divided by k; what produces width units is copied. The embeddings and
  the readout are copied undivided: the readout's μP multiplier α_out / m falls by k and absorbs the k
  copies it sums (the authors' MuReadout argument), which also lets a tied embedding be both. Norm gains
  are copied. The paper's GPT-2 keeps its head count and widens each head (copies within a head); here
  the head size is fixed and heads are added (trainer/model.py), so units are copied as whole blocks
  ([x; x; …; x]) and each head is copied whole, with its q·k scale α_attn / d_head unchanged. SwiGLU's
  gate and value halves, and Q, K, V, are each copied on their own.
- Same training. Under μP every parameter's gradient in the widened model is the proxy's / k per copy,
  and μP's Adam rules at k·m (hidden LR × 1/m, every ε × 1/m) turn it into the proxy's update (/k for
  the matrices divided by k). So the Adam moments are copied like their parameter with m / k and v / k²,
  the step count kept (the authors' transfer_optimizer), and with no noise the widened run follows the
  proxy's exactly (their zero-noise equivalence; tests/trainer/test_upscale.py checks it to 1e-10).
  SP has no readout multiplier, so a tied embedding cannot be both copied and divided, and its updates
  do not scale with the copies: upscaling is refused there (the authors' SP variant is equivalent at
  initialisation only).
- Noise. Copies that stay equal add no capacity; `noise` adds noise × a fresh μP initialisation of the
  wide model (the authors' models.py upscale_reset_parameters: noise_std × the μP init, none on the
  zero-initialised readout and query, none on norm gains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer.checkpoint import TrainState
from trainer.growth import UpscaleError, check_widths
from trainer.model import GPT, build_model
from trainer.mup import make_optimizer, parameter_rule
from trainer.spec import ArchitectureSpec


@dataclass(frozen=True)
class Axes:
    """How a parameter's two dims (rows, columns) widen: 'fixed' (vocabulary, context), 'width',
    'ffn' (the FFN hidden units), or a number of stacked blocks of width or FFN units (QKV, SwiGLU)."""

    rows: tuple[str, int]  # (kind, number of stacked blocks)
    cols: tuple[str, int] | None  # None for a vector (norm gains)
    divide: bool  # the columns read copied units: divide by k


def axes_of(name: str, spec: ArchitectureSpec) -> Axes:
    """The widening of parameter `name` of trainer.model.GPT."""
    if name in ("wte.weight", "wpe.weight", "lm_head.weight"):
        # Rows are tokens or positions; columns are width units, copied. The readout is not divided:
        # its μP multiplier α_out / m falls by k instead (trainer/mup.py forward_multipliers).
        return Axes(("fixed", 1), ("width", 1), divide=False)
    if name.endswith((".norm1.weight", ".norm2.weight", ".norm.weight")) or name == "norm_f.weight":
        return Axes(("width", 1), None, divide=False)
    if name.endswith("perceptron.linear.weight"):
        # Block "single": width -> width. Its mean subtraction and norm see each copied unit k times, so
        # the mean and the scale, and thus the function, are the proxy's.
        return Axes(("width", 1), ("width", 1), divide=True)
    if name.endswith("attn.qkv.weight"):
        return Axes(("width", 3), ("width", 1), divide=True)  # Q, K and V stacked, each widened
    if name.endswith("attn.out.weight"):
        return Axes(("width", 1), ("width", 1), divide=True)
    if name.endswith("mlp.up.weight"):
        return Axes(("ffn", 2 if spec.activation == "swiglu" else 1), ("width", 1), divide=True)
    if name.endswith("mlp.down.weight"):
        return Axes(("width", 1), ("ffn", 1), divide=True)
    raise UpscaleError(f"parameter {name!r} has no widening rule: add it to trainer/upscale.py axes_of")


def _index(kind: str, blocks: int, size: int, k: int) -> torch.Tensor:
    """For each new index along a dim, the old index it copies: every block of `size` tiled k times."""
    if kind == "fixed":
        return torch.arange(size * blocks)
    tiled = torch.arange(size).repeat(k)  # [0..size-1] k times: whole-block copies keep heads whole
    return torch.cat([tiled + b * size for b in range(blocks)])


def _widen(tensor: torch.Tensor, axes: Axes, k: int) -> torch.Tensor:
    rows = _index(axes.rows[0], axes.rows[1], tensor.size(0) // axes.rows[1], k)
    out = tensor.index_select(0, rows.to(tensor.device))
    if axes.cols is not None:
        cols = _index(axes.cols[0], axes.cols[1], tensor.size(1) // axes.cols[1], k)
        out = out.index_select(1, cols.to(tensor.device))
    return out


def widen_tensor(
    name: str, tensor: torch.Tensor, spec: ArchitectureSpec, k: int, moment: int = 0
) -> torch.Tensor:
    """Parameter `name` (moment 0), or its Adam first (1) or second (2) moment, widened k-fold.

    A parameter whose columns read copied units is divided by k; every gradient in the widened model is
    the proxy's / k per copy, so first moments are divided by k and second moments by k² (module
    docstring)."""
    axes = axes_of(name, spec)
    out = _widen(tensor, axes, k)
    scale = {0: 1 / k if axes.divide else 1.0, 1: 1 / k, 2: 1 / k**2}[moment]
    return out * scale


@torch.no_grad()
def upscale(model: GPT, spec: ArchitectureSpec, to_width: int, *, noise: float = 0.0, seed: int = 0) -> GPT:
    """The trained `model` widened to `to_width` (a whole multiple of its width) as a new model on the
    same device: the same function when `noise` is 0, else perturbed by noise × a fresh μP init drawn
    from `seed` (module docstring)."""
    if not math.isfinite(noise) or noise < 0:
        raise UpscaleError(f"noise {noise} must be a finite number ≥ 0 (0: the exact copy)")
    k = check_widths(spec, model.width, to_width)
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wide = build_model(spec, to_width)  # a fresh μP init of the wide model: the noise's shape
    wide = wide.to(device)
    source = dict(model.named_parameters())
    for name, param in wide.named_parameters():
        copied = widen_tensor(name, source[name].detach(), spec, k)
        gain = parameter_rule(spec, to_width, name).role in ("block_gain", "final_gain")
        param.copy_(copied if gain or not noise else copied + noise * param)
    return wide


def upscale_optimizer(
    optimizer: torch.optim.Optimizer,
    model: GPT,
    wide: GPT,
    spec: ArchitectureSpec,
    lr: float | None = None,
) -> torch.optim.AdamW:
    """An AdamW for `wide` (trainer.mup.make_optimizer at the new width) whose state is `optimizer`'s for
    `model`, widened: moments copied like their parameters, m / k and v / k², the step count kept."""
    k = check_widths(spec, model.width, wide.width)
    new = make_optimizer(wide, spec, lr)
    old_names = {id(p): n for n, p in model.named_parameters()}
    new_params = dict(wide.named_parameters())
    for param, state in optimizer.state.items():
        name = old_names.get(id(param))
        if name is None or not state:
            continue
        target = new_params[name]
        new.state[target] = {
            "step": state["step"].clone() if torch.is_tensor(state["step"]) else state["step"],
            "exp_avg": widen_tensor(name, state["exp_avg"], spec, k, moment=1),
            "exp_avg_sq": widen_tensor(name, state["exp_avg_sq"], spec, k, moment=2),
        }
    return new


@dataclass(frozen=True)
class WarmStart:
    """Where a warm-started run begins (trainer.train(warm_start=...)): a trained narrower run's final
    state, widened to the run's width with `noise`."""

    state: TrainState
    noise: float = 0.0

    def widen(
        self, spec: ArchitectureSpec, width: int, seed: int, lr: float
    ) -> tuple[GPT, torch.optim.AdamW]:
        """The widened model (on the CPU, noise drawn from `seed`) and an AdamW holding the widened
        moments (at base LR `lr`)."""
        parent = build_model(spec, self.state.width)
        parent.load_state_dict(self.state.model)
        parent_optimizer = make_optimizer(parent, spec, lr=self.state.lr)
        parent_optimizer.load_state_dict(self.state.optimizer)
        wide = upscale(parent, spec, width, noise=self.noise, seed=seed)
        return wide, upscale_optimizer(parent_optimizer, parent, wide, spec, lr=lr)
