"""How many sequences one forward/backward may hold: the micro-batch for gradient accumulation.

A spec fixes the optimizer batch (`training.batch_tokens`, up to 2^24 tokens), which need not fit in
a device's memory at once. `micro_batch_size` splits it into equal micro-batches whose activations fit
a memory budget; `train` accumulates their gradients, so the optimizer step, the batch and the loss
are those of the whole batch. Only the estimate below decides the split, never a trial run, so the
split is the same on every attempt of a run.
"""

from __future__ import annotations

import torch

from trainer.accounting import count_params
from trainer.loss import LOGIT_BYTES
from trainer.spec import ArchitectureSpec

# Bytes per parameter held besides the activations: fp32 weights (4), fp32 gradients (4) and Adam's
# two fp32 moments (8).
STATE_BYTES_PER_PARAM = 16
SAFETY = 1.25  # the estimate leaves out allocator fragmentation and the kernels' workspaces
RESERVE_FRACTION = 0.1  # of the free device memory, left to other allocations (compile, cuBLAS)


def activation_bytes_per_token(spec: ArchitectureSpec, width: int, *, half_precision: bool) -> int:
    """Bytes saved for the backward pass per token, with flash attention (no T × T matrix kept).

    Per layer, after Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
    Models", §4.1: 34·h bytes per token for a 4h MLP in 16-bit, less the dropout masks this model has
    not): the attention block keeps its input, Q, K, V and the output projection's input (about 11
    width-sized tensors of 16-bit values, counted 2 bytes each), the MLP its input, the up projection's
    output and the activation's output, and each norm its input. Under autocast the residual stream
    stays fp32 (2 more bytes per width element per norm). The readout keeps the logits in bf16 and fp32
    and their gradient in fp32: 10 bytes per vocabulary entry. Without autocast (CPU, fp32) every
    activation is twice as large. Block "single" and family "ngpt" keep what their own forward keeps
    (trainer/model.py SingleBlock, trainer/ngpt.py NormalizedBlock), counted the same way.
    """
    hidden = spec.ffn_hidden(width)
    up = 2 * hidden if spec.activation == "swiglu" else hidden
    elem = 2 if half_precision else 4
    fp32 = 4  # the residual stream under autocast, and everything on a CPU
    at_norm = 2 * width if half_precision else 0  # the fp32 residual kept at a norm, beyond 16 bits
    if spec.block == "single":  # norm input, W's output, φ's output, the mean-subtracted branch
        per_layer = 4 * width * elem + at_norm
    elif spec.family == "ngpt":  # trainer/ngpt.py: no norm layers, but a normalisation at every step
        # Attention: input, Q, K, V, unit Q and K, output, out-projection input. MLP: input, [u; ν]
        # before and after s_uv, SiLU's input and output, their product. Each of the two updates
        # h ← unit(h + α(unit(branch) − h)): the branch and its unit (16-bit), the difference and the
        # sum before its unit (fp32).
        attention = 8 * width * elem
        mlp = width * elem + 2 * up * elem + 3 * hidden * elem
        updates = 2 * (2 * width * elem + 2 * width * fp32)
        per_layer = attention + mlp + updates
    else:
        attention = 5 * width * elem + width * elem  # norm input, Q, K, V, attention output; out-proj input
        mlp = width * elem + up * elem + hidden * elem  # input, up output, activation output
        per_layer = attention + mlp + 2 * at_norm  # the residual stream kept in fp32 at both norms
    readout = spec.vocab_size * (LOGIT_BYTES if half_precision else 8)  # fp32: logits and gradient
    return int(SAFETY * (spec.n_layers * per_layer + readout + 4 * width))


def micro_batch_size(
    spec: ArchitectureSpec, width: int, budget_bytes: float | None, *, half_precision: bool
) -> int:
    """The largest divisor of spec.batch_size whose activations fit `budget_bytes` (all of it if None).

    Equal micro-batches keep the accumulated gradient the exact mean over the batch. One sequence is
    the floor: a budget below it still trains, one sequence at a time, and the device's own
    out-of-memory error says the rest.
    """
    batch = spec.batch_size
    if budget_bytes is None:
        return batch
    per_sequence = (
        activation_bytes_per_token(spec, width, half_precision=half_precision) * spec.context_length
    )
    fits = max(1, int(budget_bytes // per_sequence))
    return max(d for d in range(1, batch + 1) if batch % d == 0 and d <= fits)


def device_budget(spec: ArchitectureSpec, width: int, device: torch.device) -> float | None:
    """Bytes free for activations on `device` once the weights, gradients and Adam moments are
    allocated; None on a CPU, where the whole batch is one micro-batch unless a budget is given."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    total, _ = count_params(spec, width)
    return max(0.0, free * (1 - RESERVE_FRACTION) - STATE_BYTES_PER_PARAM * total)
