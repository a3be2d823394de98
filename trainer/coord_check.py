"""The coordinate check (Yang et al. 2022, Tensor Programs V, §D.1 and Fig. 5; microsoft/mup
`coord_check.py`): train each width a few Adam steps on one fixed batch and record how large every
module's output is. Under μP the sizes stay flat as the width grows; under SP some blow up. The same
check along depth tests the Depth-μP / CompleteP residual scaling (Tensor Programs VI; Dey et al. 2025).

Recorded per module, after the last step, as mean |x| over the batch: the embedding output, each block's
attention logits (q·k × scale), attention output and MLP output (before the residual multiplier), or a
block "single"'s branch output MS(φ(W h)) (before its multiplier), each block's residual stream, and the
logits; and the same for Δx = x_t − x_0, the change since initialisation (TP-V's "Δh"), which is what μP
keeps Θ(1) for every layer that learns.

The batch is random tokens from the vocabulary: the check is about how activation sizes scale with
width, which the data does not change, and it must run anywhere (the API process reads no training
data). Pure compute, seconds on a CPU at the default sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from trainer.coord_plan import default_depths, default_widths
from trainer.model import GPT, Block, CausalSelfAttention, SingleBlock, build_model
from trainer.mup import make_optimizer
from trainer.ngpt import NormalizedBlock, renormaliser
from trainer.spec import ArchitectureSpec

FLAT_SLOPE = 0.5  # halfway between μP (slope 0: every coordinate Θ(1)) and SP (slope ~1: Adam updates of
# hidden layers grow ∝ width, TP-V Table 3); measured: μP ≤ 0.31 at a large LR, SP ≥ 0.8 at a small one
DEFAULT_STEPS = 3  # "a few steps" (mup's coord_check default nsteps is 3)
DEFAULT_SEEDS = (0, 1)
BATCH_SEQUENCES = 4
MAX_CONTEXT = 64  # the check needs a few tokens per sequence, not the spec's whole context


@dataclass(frozen=True)
class Coordinate:
    name: str  # e.g. "block 0 attention logits"
    sizes: list[float]  # mean |x| at each size (width or depth), after the last step
    deltas: list[float]  # mean |x_t − x_0| at each size
    slope: float  # log2-log2 slope of sizes against the width (or depth)
    delta_slope: float


@dataclass(frozen=True)
class CoordCheck:
    axis: Literal["width", "depth"]
    sizes: list[int]  # the widths (or depths) checked
    lr: float
    steps: int
    seeds: list[int]
    coordinates: list[Coordinate]
    max_abs_slope: float
    threshold: float
    verdict: Literal["passes", "fails"]
    worst: str  # the coordinate with the steepest slope

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coord_check(
    spec: ArchitectureSpec,
    *,
    axis: Literal["width", "depth"] = "width",
    sizes: list[int] | None = None,
    width: int | None = None,
    lr: float | None = None,
    steps: int = DEFAULT_STEPS,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
    threshold: float = FLAT_SLOPE,
) -> CoordCheck:
    """Run the check along `axis`. Depth checks run at `width` (default: the first default width)."""
    if axis == "width":
        sizes = sizes or default_widths(spec)
        for w in sizes:
            spec.validate_width(w)
    else:
        sizes = sizes or default_depths(spec)
        width = width or default_widths(spec)[0]
        spec.validate_width(width)
    if len(sizes) < 2:
        raise ValueError(f"a coordinate check needs at least two {axis}s, not {sizes}")
    base_lr = spec.training.lr if lr is None else lr
    context = min(spec.context_length, MAX_CONTEXT)
    tokens = torch.randint(
        0, spec.vocab_size, (BATCH_SEQUENCES, context + 1), generator=torch.Generator().manual_seed(0)
    )
    x, y = tokens[:, :-1], tokens[:, 1:]
    per_size = []
    for size in sizes:
        shaped = spec.at_depth(size) if axis == "depth" else spec
        at_width = size if axis == "width" else width
        assert at_width is not None
        runs = [_record(shaped, at_width, base_lr, steps, seed, x, y) for seed in seeds]
        means = {name: np.mean([run[name] for run in runs], axis=0) for name in runs[0]}
        per_size.append(_by_position(means, shaped.n_layers) if axis == "depth" else means)
    names = [n for n in per_size[0] if all(n in p for p in per_size)]
    log_sizes = np.log2(np.array(sizes, dtype=float))
    coordinates = []
    for name in names:
        size_of = [float(p[name][0]) for p in per_size]
        delta_of = [float(p[name][1]) for p in per_size]
        coordinates.append(
            Coordinate(name, size_of, delta_of, _slope(log_sizes, size_of), _slope(log_sizes, delta_of))
        )
    steepest = max(coordinates, key=lambda c: max(abs(c.slope), abs(c.delta_slope)))
    worst = max(abs(steepest.slope), abs(steepest.delta_slope))
    return CoordCheck(
        axis=axis,
        sizes=list(sizes),
        lr=base_lr,
        steps=steps,
        seeds=list(seeds),
        coordinates=coordinates,
        max_abs_slope=worst,
        threshold=threshold,
        verdict="passes" if worst <= threshold else "fails",
        worst=steepest.name,
    )


def _by_position(coordinates: dict[str, Any], n_layers: int) -> dict[str, Any]:
    """Along depth "block 1" is a different block at each depth: compare the first and the last."""
    renamed = {}
    for name, value in coordinates.items():
        if not name.startswith("block "):
            renamed[name] = value
            continue
        index, rest = name.removeprefix("block ").split(" ", 1)
        if int(index) == 0:
            renamed[f"first block {rest}"] = value
        if int(index) == n_layers - 1:
            renamed[f"last block {rest}"] = value
    return renamed


def _slope(log_sizes: np.ndarray, values: list[float]) -> float:
    floor = np.finfo(np.float32).tiny  # an exactly-zero coordinate (zero init, no update) is flat
    return float(np.polyfit(log_sizes, np.log2(np.maximum(values, floor)), 1)[0])


def _record(
    spec: ArchitectureSpec, width: int, lr: float, steps: int, seed: int, x: torch.Tensor, y: torch.Tensor
) -> dict[str, tuple[float, float]]:
    """(mean |x_t|, mean |x_t − x_0|) of every coordinate after `steps` Adam steps on (x, y)."""
    torch.manual_seed(seed)
    model = build_model(spec, width)
    optimizer = make_optimizer(model, spec, lr=lr)
    renormalise = renormaliser(model, spec)
    initial = _activations(model, x)
    for _ in range(steps):
        F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
        optimizer.step()
        if renormalise is not None:
            renormalise()
        optimizer.zero_grad(set_to_none=True)
    final = _activations(model, x)
    # nGPT's hidden vectors lie on the unit sphere, whose coordinates are Θ(1/√d): read × √d (the
    # ‖·‖/√d-per-coordinate convention of νGPT §3.2, Def. 3.1), so that Θ(1) in norm reads flat.
    unit = math.sqrt(width) if spec.family == "ngpt" else 1.0
    return {
        name: tuple(  # type: ignore[misc]
            v * (1.0 if name == "logits" else unit)
            for v in (float(value.abs().mean()), float((value - initial[name]).abs().mean()))
        )
        for name, value in final.items()
    }


@torch.no_grad()
def _activations(model: GPT, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every coordinate of one forward pass, by name (hooks read them; the model is not changed)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []

    def keep(name: str) -> Any:
        def hook(_module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            seen[name] = output.detach().clone()

        return hook

    def embedding(_module: torch.nn.Module, inputs: Any) -> None:
        seen.setdefault("embedding", inputs[0].detach().clone())  # the first block's input

    def attention_logits(i: int) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, _output: torch.Tensor) -> None:
            assert isinstance(module, CausalSelfAttention)
            seen[f"block {i} attention logits"] = module.logits(*inputs).detach()

        return hook

    blocks: list[Block | SingleBlock | NormalizedBlock] = list(model.blocks)  # type: ignore[arg-type]
    hooks.append(blocks[0].register_forward_pre_hook(embedding))
    for i, block in enumerate(blocks):
        if isinstance(block, SingleBlock):
            hooks.append(block.perceptron.register_forward_hook(keep(f"block {i} branch output")))
        elif isinstance(block, NormalizedBlock):  # nGPT: no logits method; its branches before Norm
            hooks.append(block.attn.register_forward_hook(keep(f"block {i} attention output")))
            hooks.append(block.mlp.register_forward_hook(keep(f"block {i} MLP output")))
        else:
            hooks.append(block.attn.register_forward_hook(attention_logits(i)))
            hooks.append(block.attn.register_forward_hook(keep(f"block {i} attention output")))
            hooks.append(block.mlp.register_forward_hook(keep(f"block {i} MLP output")))
        hooks.append(block.register_forward_hook(keep(f"block {i} residual stream")))
    try:
        seen["logits"] = model(x)  # (B, T, V)
    finally:
        for hook in hooks:
            hook.remove()
    return seen
