"""One optimizer step, with gradient accumulation: what `train` runs and the throughput bench times.

The batch (B sequences) is cut into B / micro_batch equal micro-batches; each one's mean loss is
divided by their number before backward, so the accumulated gradient is the mean over the whole batch,
the same as one pass over it (up to floating-point summation order). bf16 autocast on CUDA; the loss
(trainer/loss.py) takes the cross-entropy in fp32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from trainer.loss import LossFn


def autocast(device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA (tensor cores), full precision elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


class TrainStep:
    """`step(x, y)` runs the loss forward and backward over (B, T) inputs and targets in micro-batches, clips,
    steps the optimizer and returns the batch's mean loss as a 0-d tensor on the device (not read, so
    CUDA never waits for the host)."""

    def __init__(
        self,
        loss: LossFn,
        params: Iterable[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        *,
        micro_batch: int,
        grad_clip: float,
        device: torch.device,
        after_step: Callable[[], None] | None = None,
    ) -> None:
        if micro_batch < 1:
            raise ValueError(f"micro_batch must be at least 1, not {micro_batch}")
        self.loss, self.optimizer = loss, optimizer
        self.params = list(params)
        self.micro_batch, self.grad_clip, self.device = micro_batch, grad_clip, device
        self.after_step = after_step  # e.g. nGPT's renormalisation of its weights (trainer/ngpt.py)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.size(0) % self.micro_batch:
            raise ValueError(
                f"a batch of {x.size(0)} sequences does not split into micro-batches of {self.micro_batch}"
            )
        n_micro = x.size(0) // self.micro_batch
        total = torch.zeros((), device=x.device)
        for xs, ys in zip(x.split(self.micro_batch), y.split(self.micro_batch), strict=True):
            with autocast(self.device):
                loss = self.loss(xs, ys)
            (loss / n_micro).backward()  # the gradient accumulates as the batch mean
            total += loss.detach()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / n_micro
